-- Agent credentials scoped to part of the shared state (tokens.create's kvPrefixes): a JSON array
-- of key prefixes; the credential writes (kv.set, kv.increment, kv.delete) only keys starting
-- with one of them. Null: any key (every credential issued before).
ALTER TABLE "api_tokens" ADD COLUMN "kvPrefixes" TEXT;
