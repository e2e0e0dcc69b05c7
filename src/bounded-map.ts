// The caches of the server keep at most so many entries, the least recently kept going first.

/**
 * Sets `key` to `value` as the newest entry of `map`, first dropping the oldest entry if the map
 * already holds `max` others (a Map iterates in insertion order). A key set again moves to newest.
 */
export function setNewest<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  if (!map.delete(key) && map.size >= max) map.delete(map.keys().next().value!);
  map.set(key, value);
}
