// Credential writes and reads as the database threads run them (src/db/thread/commands.ts).
import { notFound } from "../errors.js";
import type { WriteContext } from "../db/writer.js";
import type { CreateTokenRequest, IssuedToken, TokenView } from "./token-schemas.js";
import { toTokenView, type TokenRecord, type TokenStore } from "./token-store.js";


export function tokenCommands(tokens: TokenStore) {
  return {
    "tokens.create": (ctx: WriteContext, request: CreateTokenRequest): IssuedToken => tokens.create(request, ctx.now),
    "tokens.revoke": (ctx: WriteContext, tokenId: string): TokenView => {
      const row = tokens.revoke(tokenId, ctx.now);
      if (!row) throw notFound("TOKEN_NOT_FOUND", tokenId);
      return toTokenView(row);
    },
    /** A server starting with an admin token configured: the file stays closed without it (TokenStore.markServedWithCredentials). */
    "tokens.markServedWithCredentials": (_ctx: WriteContext, _: undefined): boolean => tokens.markServedWithCredentials(),
    "tokens.touch": (ctx: WriteContext, tokenIds: string[]): null => {
      tokens.touch(tokenIds, ctx.now);
      return null;
    },
  };
}

export function tokenQueries(tokens: TokenStore) {
  return {
    "tokens.list": (request: { includeRevoked: boolean }): TokenView[] => tokens.list(request.includeRevoked).map(toTokenView),
    /** One credential as listed (revoked too), or null when no row has that id. */
    "tokens.get": (tokenId: string): TokenView | null => {
      const row = tokens.get(tokenId);
      return row === undefined ? null : toTokenView(row);
    },
    "tokens.inForce": (_: undefined): { records: TokenRecord[]; issued: boolean } => tokens.inForce(),
  };
}
