// Which fields of a JSON Schema (the OpenAPI document's, an MCP tool's) carry no description: a
// field without one leaves a plain HTTP client or an LLM agent guessing what it means.
/** Adds each property of `schema` (nested ones too) without a description to `out`; the number of properties seen. */
export function undocumentedFields(schema: any, where: string, out: string[]): number {
  if (typeof schema !== "object" || schema === null || "$ref" in schema) return 0;
  let seen = 0;
  for (const [key, property] of Object.entries<any>(schema.properties ?? {})) {
    seen++;
    if (!property.description && !property.$ref) out.push(`${where}.${key}`);
    seen += undocumentedFields(property, `${where}.${key}`, out);
  }
  for (const nested of [schema.items, ...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])]) seen += undocumentedFields(nested, where, out);
  return seen;
}
