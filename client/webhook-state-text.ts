// A webhook's state as people read it: the operator CLI's `webhooks` and the dashboard's
// Webhooks panel show it so, each writing times its own way.

/** What a webhook's state is read from, as the server answers it. */
export interface WebhookStateShape {
  enabled: boolean;
  disabledReason: string | null;
  failures: number;
  failingSince: Date | null;
  nextAttemptAt: Date;
}

/** "delivering", "failing: 3 attempts since T, next T", or "disabled: why" (the reason may hold a receiver's text: print it as text). */
export function webhookStateText(webhook: WebhookStateShape, when: (date: Date | null) => string): string {
  if (!webhook.enabled) return `disabled: ${webhook.disabledReason ?? "-"}`;
  if (webhook.failures > 0) return `failing: ${webhook.failures} attempts since ${when(webhook.failingSince)}, next ${when(webhook.nextAttemptAt)}`;
  return "delivering";
}
