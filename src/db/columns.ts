// Conversions between column values and wire values, shared by every store. Raw SQL returns
// times as integer ms and Prisma returns Dates; both go through toDate.

export const toDate = (value: number | bigint | Date): Date => (value instanceof Date ? value : new Date(Number(value)));
export const toDateOrNull = (value: number | bigint | Date | null): Date | null => (value == null ? null : toDate(value));

/** JSON text for a column. `undefined` (absent) is stored as null JSON. */
export const toJsonText = (value: unknown): string => JSON.stringify(value ?? null);
export const fromJsonText = (text: string | null): unknown => (text == null ? null : JSON.parse(text));
