// The size of a live event as the streams that buffer it count it: its JSON's bytes. An event
// is one object shared by every listener of the bus, so its size is measured once, by the first
// stream that buffers it, and kept with it for as long as the event lives.
import { utf8Bytes } from "../db/answer-budget.js";
import type { CoordinationEvent } from "./event-schemas.js";

const sizes = new WeakMap<CoordinationEvent, number>();

/** The size of the event's JSON in UTF-8, in bytes. */
export function eventBytes(event: CoordinationEvent): number {
  let size = sizes.get(event);
  if (size === undefined) {
    size = utf8Bytes(JSON.stringify(event));
    sizes.set(event, size);
  }
  return size;
}
