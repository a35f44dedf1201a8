package identity

import "errors"

// ErrCredential is wrapped by every error a verifier's VerifyIdentity
// returns: the credential is malformed, does not verify, is expired, is
// for another audience or issuer, or lacks the agent's ID.
var ErrCredential = errors.New("identity: credential refused")
