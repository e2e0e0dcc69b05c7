// What loadConfig says of a configuration, for tests of its checks.
import { ConfigError, loadConfig, type ConfigSources } from "../../src/config.js";

/** The problems loadConfig reports, or [] when it accepts the sources (an empty environment unless they give one). */
export function problemsOf(sources: ConfigSources): string[] {
  try {
    loadConfig({ env: {}, ...sources });
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems;
  }
}
