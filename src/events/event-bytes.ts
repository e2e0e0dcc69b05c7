// The size of a live event as the streams that buffer it count it: its JSON's length. An event
// is one object shared by every listener of the bus, so its size is measured once, by the first
// stream that buffers it, and kept with it for as long as the event lives.
import type { CoordinationEvent } from "./event-schemas.js";

const sizes = new WeakMap<CoordinationEvent, number>();

/** The length of the event's JSON, in UTF-16 code units (a byte each for ASCII; near enough for a bound). */
export function eventBytes(event: CoordinationEvent): number {
  let size = sizes.get(event);
  if (size === undefined) {
    size = JSON.stringify(event).length;
    sizes.set(event, size);
  }
  return size;
}
