-- The last rotation's old secret back in the columns of the versions before retiredSecrets, which
-- 20270109000000 emptied: a server of such a version still running on the file signs with
-- previousSecret alone, so it dropped a secret still in its grace from every request it
-- delivered. This version keeps those columns as the last rotation's old secret (NULL: that
-- rotation had no grace, and no old secret signs); the last of the list is that rotation's.
UPDATE "webhooks"
  SET "previousSecret" = json_extract("retiredSecrets", '$[#-1].secret'),
      "previousSecretUntil" = json_extract("retiredSecrets", '$[#-1].until')
  WHERE "previousSecret" IS NULL AND json_array_length("retiredSecrets") > 0;
