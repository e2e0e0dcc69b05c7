// The building blocks of every capability's input schemas. One set of rules for every
// transport: tRPC validates with these schemas as they are, and the REST adapter only turns
// query-string text into the types they expect (src/rest/query-coercion.ts) before the same
// validation. Nothing here converts: a number is a number, a boolean a boolean.
import { z } from "zod";

/**
 * Text stored in a column: ids, names, types, errors. Not valid Unicode (a lone surrogate) would
 * be stored mangled, as U+FFFD, and no longer match itself: an agent "w\ud800" could then never
 * settle its own task. Such text is refused.
 */
export const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((value) => value.isWellFormed(), "must be valid Unicode text (it has a lone surrogate)");

/** What an id or name that is a URL path's dot segment is told. */
export const DOT_SEGMENT_PROBLEM = 'must not be "." or "..": a URL path cannot carry it (clients resolve it as a dot segment, even written %2e)';

/**
 * A name as it may already be stored: what lookups, filters and removals take (storedName), so
 * that an agent "." registered by an earlier version can still be found and removed over tRPC.
 * Only spaces is a mistake (an agent "   " holds leases no one can name back).
 */
export const storedName = () => text(200).refine((value) => value === "" || value.trim() !== "", "must not be blank");

/**
 * Ids and names that are given to something or act as it: agents, tasks, queues, capabilities.
 * Also not "." or "..": in a REST path (/agents/{agentId}), URL parsers resolve them, %2e too,
 * and the request reaches another route (/agents, the list).
 */
export const name = () => storedName().refine((value) => value !== "." && value !== "..", DOT_SEGMENT_PROBLEM);

/** An integer within [min, max] (never past 2^53 - 1, where integers stop being exact). */
export const int = (min: number, max: number = Number.MAX_SAFE_INTEGER) => z.number().int().min(min).max(max);

/** A duration in milliseconds, up to `max`. */
export const ms = (max: number) => int(0, max);

export const WEEK_MS = 7 * 24 * 3_600_000;

/** A list of names (queues). Over REST: repeated or comma-separated query values. */
export const nameList = () => z.array(name()).max(100);

/** The most capabilities an agent offers: registered (its card's skills included) or named by a claim or a steal. */
export const MAX_CAPABILITIES = 200;

/** Capabilities, registered or offered by a claimer: one bound everywhere, so a claim can name what an agent registered. */
export const capabilityList = () => z.array(name()).max(MAX_CAPABILITIES);
