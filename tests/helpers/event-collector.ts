// Collects what a real `events.onEvent` WebSocket subscription delivers, for the event-stream tests.
import type { inferRouterInputs, inferRouterOutputs } from "@trpc/server";
import type { CoordinationApi } from "../../client/index.js";
import type { AppRouter } from "../../src/trpc/app-router.js";

export type StreamInput = inferRouterInputs<AppRouter>["events"]["onEvent"];
export type PublishedEvent = inferRouterOutputs<AppRouter>["events"]["publish"];

export interface Collector {
  /** Events in arrival order. */
  readonly events: PublishedEvent[];
  /** The tracked ids the client got with them (the seq as a string). */
  readonly ids: string[];
  readonly errors: unknown[];
  /** Resolves when the server answered "started": the stream listens from then on. */
  readonly started: Promise<void>;
  seqs(): number[];
  unsubscribe(): void;
}

export function collectEvents(api: CoordinationApi, input: StreamInput, onEach?: (event: PublishedEvent, collector: Collector) => void): Collector {
  let markStarted!: () => void;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  const collector: Collector = {
    events: [],
    ids: [],
    errors: [],
    started,
    seqs: () => collector.events.map((e) => e.seq),
    unsubscribe: () => subscription.unsubscribe(),
  };
  const subscription = api.events.onEvent.subscribe(input, {
    onStarted: () => markStarted(),
    onData: (envelope) => {
      collector.ids.push(envelope.id);
      collector.events.push(envelope.data);
      onEach?.(envelope.data, collector);
    },
    onError: (error) => collector.errors.push(error),
  });
  return collector;
}

/** 1..n as an array. */
export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
