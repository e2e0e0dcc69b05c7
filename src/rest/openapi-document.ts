// The OpenAPI document for the REST routes, generated from the procedures' meta and schemas.
import { generateOpenApiDocument } from "trpc-to-openapi";
import { appRouter } from "../trpc/app-router.js";
import { VERSION } from "../version.js";

export function buildOpenApiDocument(baseUrl: string) {
  return generateOpenApiDocument(appRouter, {
    title: "Coordination",
    description:
      "Queue/event coordination server for multi-agent systems: priority task queue with leases, event stream, agent registry and pre-execution memory.",
    version: VERSION,
    baseUrl,
  });
}
