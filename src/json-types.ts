// JSON as a TypeScript type: what payloads, results, metadata and data are. Its own module with
// no imports, because it is part of the client's public types.

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };
