// Public API for embedding the server in another Node program (package export "coordination/server").
export { createServer, type CoordinationServer } from "./server/create-server.js";
export { loadConfig, ConfigError, SETTINGS, envName, type Config, type ConfigSources } from "./config.js";
export { createLogger } from "./logger.js";
export type { AppRouter } from "./trpc/app-router.js";
export { CoordinationError, ERROR_STATUS, type ErrorBody, type ErrorCode } from "./errors.js";
export type { JsonObject, JsonValue } from "./json-types.js";
export { openCoordination, type InProcessCoordination, type InProcessOptions } from "./in-process-api.js";
