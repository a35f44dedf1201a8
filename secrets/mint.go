package secrets

import (
	"container/heap"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/taskguard/taskguard/authz"
)

// ErrInvalidToken is wrapped by every error [Verifier.Verify] returns. The
// error text names the reason (malformed, bad signature, expired, ...) and
// never contains any part of the token.
var ErrInvalidToken = errors.New("secrets: invalid token")

// The reasons Verify reports. Each is a fixed message, so no part of a token
// can reach an error string.
var (
	errTokenNotConfigured = fmt.Errorf("%w: verifier not configured", ErrInvalidToken)
	errTokenTooLong       = fmt.Errorf("%w: longer than 8 KiB", ErrInvalidToken)
	errTokenMalformed     = fmt.Errorf("%w: malformed", ErrInvalidToken)
	errTokenAlg           = fmt.Errorf("%w: unexpected signing algorithm", ErrInvalidToken)
	errTokenSignature     = fmt.Errorf("%w: bad signature", ErrInvalidToken)
	errTokenIssuer        = fmt.Errorf("%w: wrong issuer", ErrInvalidToken)
	errTokenAudience      = fmt.Errorf("%w: audience mismatch", ErrInvalidToken)
	errTokenExpired       = fmt.Errorf("%w: expired", ErrInvalidToken)
	errTokenNotYetValid   = fmt.Errorf("%w: not yet valid", ErrInvalidToken)
	errTokenIssuedLater   = fmt.Errorf("%w: issued in the future", ErrInvalidToken)
	errTokenNoID          = fmt.Errorf("%w: missing claim jti", ErrInvalidToken)
	errTokenNoExpiry      = fmt.Errorf("%w: missing claim exp", ErrInvalidToken)
	errTokenNoTask        = fmt.Errorf("%w: missing claim task", ErrInvalidToken)
	errTokenNoAgent       = fmt.Errorf("%w: missing claim agent", ErrInvalidToken)
	errTokenClaims        = fmt.Errorf("%w: invalid claims", ErrInvalidToken)
	errTokenRevoked       = fmt.Errorf("%w: revoked", ErrInvalidToken)
)

const (
	// maxTokenLen is the longest token Verify parses and Issue produces.
	maxTokenLen = 8 << 10
	// maxLeeway is the largest clock-skew allowance WithLeeway accepts. A
	// revocation is kept this long past the token's expiry, so a verifier
	// with leeway cannot accept a revoked token.
	maxLeeway = time.Minute
	// minHMACKeyLen is the shortest HS256 key accepted (RFC 7518 §3.2).
	minHMACKeyLen = 32
	// tokenIDBytes is the number of random bytes in a jti.
	tokenIDBytes = 16
)

// TokenSpec describes the token a [Minter] mints for one secret name.
type TokenSpec struct {
	// Audience is the receiving service, the token's aud claim. Required.
	Audience string
	// Scope is the token's scope claim, serialised as one space-separated
	// string (RFC 8693 §4.2). Each entry must be a non-empty RFC 6749 scope
	// token (printable ASCII without space, '"' or '\'). An
	// [IssueRequest] may ask for a subset; an empty request scope gets all
	// of it.
	Scope []string
	// TTL is the token's lifetime: its exp is min(now+TTL, req.ExpiresAt),
	// truncated to the second. Required, at least one second (JWT times
	// have one-second precision).
	TTL time.Duration
}

// MintOption configures [NewMinter]. Exactly one key option
// ([WithEd25519Key] or [WithHMACKey]) and [WithIssuer] are required; for
// the other options a later one overrides an earlier one. [WithClock] and
// [WithRevocations] are MintOptions too.
type MintOption interface{ applyMint(*mintConfig) error }

type mintOption func(*mintConfig) error

func (f mintOption) applyMint(c *mintConfig) error { return f(c) }

type mintConfig struct {
	alg      string
	method   jwt.SigningMethod
	keys     func() jwtKeys
	nkeys    int
	issuer   string
	now      func() time.Time
	revs     *Revocations
	idSource io.Reader // nil: crypto/rand
}

// jwtKeys is a minter's key material. A Minter holds it only inside a
// closure, so that even reflection-based printing of a Minter (as an
// unexported field of another struct, or with a verb fmt rejects) shows a
// function address, not the key.
type jwtKeys struct {
	sign   any // ed25519.PrivateKey or []byte
	verify any // ed25519.PublicKey or []byte
}

// WithEd25519Key signs tokens with priv using EdDSA (RFC 8037). The key is
// copied. It must be a full 64-byte private key whose public half matches
// its seed.
func WithEd25519Key(priv ed25519.PrivateKey) MintOption {
	return mintOption(func(c *mintConfig) error {
		c.nkeys++
		k, err := checkEd25519Key(priv)
		if err != nil {
			return err
		}
		c.alg, c.method = jwt.SigningMethodEdDSA.Alg(), jwt.SigningMethodEdDSA
		keys := jwtKeys{sign: k, verify: k.Public().(ed25519.PublicKey)}
		c.keys = func() jwtKeys { return keys }
		return nil
	})
}

// WithHMACKey signs tokens with key using HS256. The key is copied and
// must be at least 32 bytes long. Every verifier holds the same key, so
// any verifier can also mint; prefer [WithEd25519Key] when the receiving
// service is not the broker's own process.
func WithHMACKey(key []byte) MintOption {
	return mintOption(func(c *mintConfig) error {
		c.nkeys++
		if len(key) < minHMACKeyLen {
			return fmt.Errorf("secrets: HMAC key is %d bytes, need at least %d", len(key), minHMACKeyLen)
		}
		k := append([]byte(nil), key...)
		c.alg, c.method = jwt.SigningMethodHS256.Alg(), jwt.SigningMethodHS256
		keys := jwtKeys{sign: k, verify: k}
		c.keys = func() jwtKeys { return keys }
		return nil
	})
}

// WithIssuer sets the iss claim. Required and non-empty.
func WithIssuer(iss string) MintOption {
	return mintOption(func(c *mintConfig) error {
		if iss == "" {
			return errors.New("secrets: empty issuer")
		}
		c.issuer = iss
		return nil
	})
}

func checkEd25519Key(priv ed25519.PrivateKey) (ed25519.PrivateKey, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("secrets: Ed25519 private key is %d bytes, need %d", len(priv), ed25519.PrivateKeySize)
	}
	k := ed25519.NewKeyFromSeed(priv.Seed())
	if subtle.ConstantTimeCompare(k, priv) != 1 {
		return nil, errors.New("secrets: Ed25519 private key's public half does not match its seed")
	}
	return k, nil
}

// Minter is a [Source] that mints a short-lived JWT (RFC 7519) per
// [IssueRequest], signed with EdDSA or HS256, carrying the task, agent,
// audience, scope and expiry. [Minter.Revoke] puts the token's ID on a
// [Revocations] list that [Verifier]s consult.
//
// A Minter is immutable after [NewMinter] and safe for concurrent use. The
// zero value is inert: Issue and Verifier return errors. Printing a Minter
// shows only its algorithm and issuer.
type Minter struct {
	alg      string
	method   jwt.SigningMethod
	keys     func() jwtKeys
	issuer   string
	now      func() time.Time
	revs     *Revocations
	idSource io.Reader
	specs    map[string]TokenSpec
	maxTTL   time.Duration
}

var (
	_ Source     = (*Minter)(nil)
	_ Classifier = (*Minter)(nil)
)

// NewMinter returns a minter for the named tokens. It copies tokens and
// checks every spec (non-empty name and audience, TTL of at least one
// second, valid scope tokens) and the options (exactly one key, an
// issuer).
func NewMinter(tokens map[string]TokenSpec, opts ...MintOption) (*Minter, error) {
	var c mintConfig
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyMint(&c); err != nil {
			return nil, err
		}
	}
	switch {
	case c.nkeys == 0:
		return nil, errors.New("secrets: no signing key: use WithEd25519Key or WithHMACKey")
	case c.nkeys > 1:
		return nil, errors.New("secrets: more than one signing key option")
	case c.issuer == "":
		return nil, errors.New("secrets: no issuer: use WithIssuer")
	case len(tokens) == 0:
		return nil, errors.New("secrets: no token specs")
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.revs == nil {
		c.revs = NewRevocations(c.now)
	}
	m := &Minter{
		alg:      c.alg,
		method:   c.method,
		keys:     c.keys,
		issuer:   c.issuer,
		now:      c.now,
		revs:     c.revs,
		idSource: c.idSource,
		specs:    make(map[string]TokenSpec, len(tokens)),
	}
	for name, s := range tokens {
		if err := checkTokenSpec(name, s); err != nil {
			return nil, err
		}
		s.Scope = append([]string(nil), s.Scope...)
		m.specs[name] = s
		m.maxTTL = max(m.maxTTL, s.TTL)
	}
	return m, nil
}

func checkTokenSpec(name string, s TokenSpec) error {
	switch {
	case name == "":
		return errors.New("secrets: token spec with empty name")
	case s.Audience == "":
		return fmt.Errorf("secrets: token spec %q: no audience", name)
	case s.TTL <= 0:
		return fmt.Errorf("secrets: token spec %q: TTL %v is not positive", name, s.TTL)
	case s.TTL < time.Second:
		return fmt.Errorf("secrets: token spec %q: TTL %v is under the one-second precision of JWT times", name, s.TTL)
	}
	for _, sc := range s.Scope {
		if !validScopeToken(sc) {
			return fmt.Errorf("secrets: token spec %q: invalid scope %q", name, sc)
		}
	}
	return nil
}

// validScopeToken reports whether s is an RFC 6749 §3.3 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x21 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// jwtClaims is the token payload: the registered claims plus the task,
// agent and scope.
type jwtClaims struct {
	jwt.RegisteredClaims
	Task  string `json:"task,omitempty"`
	Agent string `json:"agent,omitempty"`
	Scope string `json:"scope,omitempty"`
}

// Issue mints a token for req.Name. The token's claims are: iss (the
// minter's issuer), sub and agent (req.Agent), task (req.Task), aud (the
// spec's audience), scope (req.Scope if set, which must be a subset of the
// spec's scope, else the spec's scope), iat and nbf (now), exp
// (min(now+TTL, req.ExpiresAt)) and a random 128-bit jti. The credential's
// ID is the jti, its ExpiresAt the exp and its value the compact JWT.
//
// Issue does not block. It returns an error wrapping [ErrUnknownSecret] for
// an unknown name, and an error for an empty task or agent, a scope the
// spec does not grant, a lease that ends before a whole second is left, or
// a cancelled ctx.
func (m *Minter) Issue(ctx context.Context, req IssueRequest) (Credential, error) {
	if m == nil || m.keys == nil {
		return Credential{}, errors.New("secrets: Minter not initialised: use NewMinter")
	}
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return Credential{}, fmt.Errorf("secrets: mint %q: %w", req.Name, err)
		}
	}
	spec, ok := m.specs[req.Name]
	if !ok {
		return Credential{}, fmt.Errorf("%w %q", ErrUnknownSecret, req.Name)
	}
	if req.Task == "" || req.Agent == "" {
		return Credential{}, fmt.Errorf("secrets: mint %q: task and agent are required", req.Name)
	}
	scope := spec.Scope
	if len(req.Scope) > 0 {
		for _, s := range req.Scope {
			if !containsString(spec.Scope, s) {
				return Credential{}, fmt.Errorf("secrets: mint %q: scope %q not granted", req.Name, s)
			}
		}
		scope = req.Scope
	}
	now := m.now()
	exp := now.Add(spec.TTL)
	if !req.ExpiresAt.IsZero() && req.ExpiresAt.Before(exp) {
		exp = req.ExpiresAt
	}
	expDate := jwt.NewNumericDate(exp)
	if !expDate.After(now) {
		return Credential{}, fmt.Errorf("secrets: mint %q: lease ends before the token could start", req.Name)
	}
	id, err := m.newTokenID()
	if err != nil {
		return Credential{}, fmt.Errorf("secrets: mint %q: token ID: %w", req.Name, err)
	}
	iat := jwt.NewNumericDate(now)
	claims := &jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    m.issuer,
			Subject:   req.Agent,
			Audience:  jwt.ClaimStrings{spec.Audience},
			ExpiresAt: expDate,
			NotBefore: iat,
			IssuedAt:  iat,
			ID:        id,
		},
		Task:  req.Task,
		Agent: req.Agent,
		Scope: strings.Join(scope, " "),
	}
	tok, err := jwt.NewWithClaims(m.method, claims).SignedString(m.keys().sign)
	if err != nil {
		return Credential{}, fmt.Errorf("secrets: mint %q: sign: %w", req.Name, err)
	}
	if len(tok) > maxTokenLen {
		return Credential{}, fmt.Errorf("secrets: mint %q: token is %d bytes, over the 8 KiB limit", req.Name, len(tok))
	}
	return NewCredential(id, []byte(tok), expDate.Time), nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (m *Minter) newTokenID() (string, error) {
	var b [tokenIDBytes]byte
	var err error
	if m.idSource != nil {
		_, err = io.ReadFull(m.idSource, b[:])
	} else {
		_, err = rand.Read(b[:])
	}
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Revoke adds c's token ID to the minter's revocation list until c expires
// (plus one minute, the largest verifier leeway), so verifiers sharing the
// list reject the token from now on. A credential without ExpiresAt is
// kept for the longest TTL of the minter's specs. Revoke ignores ctx, so
// that it works when called for a task whose context has ended; it returns
// an error only for a credential without an ID or a zero Minter.
func (m *Minter) Revoke(_ context.Context, c Credential) error {
	if m == nil || m.revs == nil {
		return errors.New("secrets: Minter not initialised: use NewMinter")
	}
	if c.ID == "" {
		return errors.New("secrets: revoke: credential has no ID")
	}
	exp := c.ExpiresAt
	if exp.IsZero() {
		exp = m.now().Add(m.maxTTL)
	}
	m.revs.Add(c.ID, exp)
	return nil
}

// Class reports [authz.Confidential] for the names the minter knows; ok is
// false for other names.
func (m *Minter) Class(name string) (s authz.Sensitivity, ok bool) {
	if m == nil {
		return 0, false
	}
	if _, ok := m.specs[name]; !ok {
		return 0, false
	}
	return authz.Confidential, true
}

// Revocations returns the minter's revocation list (nil for a zero
// Minter). The list is shared, not copied.
func (m *Minter) Revocations() *Revocations {
	if m == nil {
		return nil
	}
	return m.revs
}

// Verifier returns a verifier for tokens minted for audience: it has the
// minter's verification key (the public key for EdDSA, the shared key for
// HS256), issuer, clock and revocation list, and no leeway. Use
// [NewVerifier] in another process, or to set a leeway.
func (m *Minter) Verifier(audience string) (*Verifier, error) {
	if m == nil || m.keys == nil {
		return nil, errors.New("secrets: Minter not initialised: use NewMinter")
	}
	var key VerifyOption
	switch k := m.keys().verify.(type) {
	case ed25519.PublicKey:
		key = WithEd25519PublicKey(k)
	case []byte:
		key = WithHMACVerifyKey(k)
	default:
		return nil, errors.New("secrets: Minter has no verification key")
	}
	return NewVerifier(key,
		WithExpectedIssuer(m.issuer),
		WithExpectedAudience(audience),
		WithClock(m.now),
		WithRevocations(m.revs))
}

// String returns "secrets.Minter{alg: ALG, issuer: ISS}"; keys are never
// printed.
func (m Minter) String() string {
	return "secrets.Minter{alg: " + m.alg + ", issuer: " + m.issuer + "}"
}

// GoString is String.
func (m Minter) GoString() string { return m.String() }

// Format prints String for every verb.
func (m Minter) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, m.String()) }

// MarshalJSON returns the algorithm and issuer only.
func (m Minter) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"alg": m.alg, "issuer": m.issuer})
}

// LogValue implements [slog.LogValuer] with the algorithm and issuer only.
func (m Minter) LogValue() slog.Value {
	return slog.GroupValue(slog.String("alg", m.alg), slog.String("issuer", m.issuer))
}

// Claims are the claims of a verified token. Times are in UTC; a time is
// zero when its claim was absent (only nbf and iat may be).
type Claims struct {
	// ID is the token ID (jti).
	ID string
	// Issuer is the iss claim.
	Issuer string
	// Subject is the sub claim; minted tokens carry the agent.
	Subject string
	// Task and Agent identify the task the token was minted for.
	Task, Agent string
	// Audience is the aud claim.
	Audience []string
	// Scope is the scope claim split at spaces.
	Scope []string
	// IssuedAt, NotBefore and ExpiresAt are the iat, nbf and exp claims.
	IssuedAt, NotBefore, ExpiresAt time.Time
}

// Revocations is an in-memory list of revoked token IDs. An entry is kept
// until one minute (the largest verifier leeway) past the expiry given to
// Add and dropped by a later Add, so memory is bounded by the tokens
// revoked within their lifetime.
//
// Revocations is safe for concurrent use. Use [NewRevocations]; the zero
// value is an empty list on time.Now, and a nil *Revocations is an empty
// list that ignores Add.
type Revocations struct {
	now func() time.Time

	// mu guards ids and byExp.
	mu sync.RWMutex
	// ids maps a revoked ID to the expiry it is kept until, grace included.
	ids map[string]time.Time
	// byExp orders the entries of ids by expiry; it may hold stale
	// duplicates, which prune skips.
	byExp revocationHeap
}

// NewRevocations returns an empty list on the clock now (nil means
// time.Now). now must be safe for concurrent use.
func NewRevocations(now func() time.Time) *Revocations {
	if now == nil {
		now = time.Now
	}
	return &Revocations{now: now, ids: make(map[string]time.Time)}
}

// Add revokes id until expiresAt plus one minute; a zero expiresAt keeps
// it for as long as the list lives. Adding an ID again keeps the later
// expiry. Add also drops entries that are past their time. An empty id is
// ignored.
func (r *Revocations) Add(id string, expiresAt time.Time) {
	if r == nil || id == "" {
		return
	}
	now := r.clock()()
	until := expiresAt.Add(maxLeeway)
	if expiresAt.IsZero() {
		until = time.Time{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(now)
	if r.ids == nil {
		r.ids = make(map[string]time.Time)
	}
	old, ok := r.ids[id]
	switch {
	case ok && old.IsZero():
		return
	case ok && !until.IsZero() && !until.After(old):
		return
	}
	r.ids[id] = until
	if !until.IsZero() {
		heap.Push(&r.byExp, revocation{id: id, until: until})
	}
}

// pruneLocked drops the entries whose time is before now. Requires r.mu
// held for writing.
func (r *Revocations) pruneLocked(now time.Time) {
	for len(r.byExp) > 0 && r.byExp[0].until.Before(now) {
		e := heap.Pop(&r.byExp).(revocation)
		if until, ok := r.ids[e.id]; ok && until.Equal(e.until) {
			delete(r.ids, e.id)
		}
	}
}

func (r *Revocations) clock() func() time.Time {
	if r.now == nil {
		return time.Now
	}
	return r.now
}

// Revoked reports whether id is on the list.
func (r *Revocations) Revoked(id string) bool {
	if r == nil {
		return false
	}
	r.mu.RLock()
	_, ok := r.ids[id]
	r.mu.RUnlock()
	return ok
}

// Len returns the number of IDs on the list, including any past their
// time that no Add has dropped yet.
func (r *Revocations) Len() int {
	if r == nil {
		return 0
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.ids)
}

type revocation struct {
	id    string
	until time.Time
}

// revocationHeap is a min-heap of revocations by until, for container/heap.
type revocationHeap []revocation

func (h revocationHeap) Len() int           { return len(h) }
func (h revocationHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h revocationHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *revocationHeap) Push(x any)        { *h = append(*h, x.(revocation)) }
func (h *revocationHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = revocation{}
	*h = old[:len(old)-1]
	return e
}

// VerifyOption configures [NewVerifier]. Exactly one key option
// ([WithEd25519PublicKey] or [WithHMACVerifyKey]), [WithExpectedIssuer]
// and [WithExpectedAudience] are required; for the other options a later
// one overrides an earlier one. [WithClock] and [WithRevocations] are
// VerifyOptions too.
type VerifyOption interface{ applyVerify(*verifyConfig) error }

type verifyOption func(*verifyConfig) error

func (f verifyOption) applyVerify(c *verifyConfig) error { return f(c) }

type verifyConfig struct {
	alg      string
	key      any
	nkeys    int
	issuer   string
	audience string
	now      func() time.Time
	revs     *Revocations
	leeway   time.Duration
}

// WithEd25519PublicKey accepts only EdDSA tokens signed by pub's private
// key. The key is copied and must be 32 bytes.
func WithEd25519PublicKey(pub ed25519.PublicKey) VerifyOption {
	return verifyOption(func(c *verifyConfig) error {
		c.nkeys++
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("secrets: Ed25519 public key is %d bytes, need %d", len(pub), ed25519.PublicKeySize)
		}
		c.alg = jwt.SigningMethodEdDSA.Alg()
		c.key = append(ed25519.PublicKey(nil), pub...)
		return nil
	})
}

// WithHMACVerifyKey accepts only HS256 tokens made with key. The key is
// copied and must be at least 32 bytes long.
func WithHMACVerifyKey(key []byte) VerifyOption {
	return verifyOption(func(c *verifyConfig) error {
		c.nkeys++
		if len(key) < minHMACKeyLen {
			return fmt.Errorf("secrets: HMAC key is %d bytes, need at least %d", len(key), minHMACKeyLen)
		}
		c.alg = jwt.SigningMethodHS256.Alg()
		c.key = append([]byte(nil), key...)
		return nil
	})
}

// WithExpectedIssuer sets the iss a token must carry. Required and
// non-empty.
func WithExpectedIssuer(iss string) VerifyOption {
	return verifyOption(func(c *verifyConfig) error {
		if iss == "" {
			return errors.New("secrets: empty expected issuer")
		}
		c.issuer = iss
		return nil
	})
}

// WithExpectedAudience sets the audience a token's aud must include: the
// verifying service. Required and non-empty.
func WithExpectedAudience(aud string) VerifyOption {
	return verifyOption(func(c *verifyConfig) error {
		if aud == "" {
			return errors.New("secrets: empty expected audience")
		}
		c.audience = aud
		return nil
	})
}

// WithLeeway allows d of clock skew on exp, nbf and iat. The default is 0;
// d must be between 0 and one minute.
func WithLeeway(d time.Duration) VerifyOption {
	return verifyOption(func(c *verifyConfig) error {
		if d < 0 || d > maxLeeway {
			return fmt.Errorf("secrets: leeway %v not within [0, %v]", d, maxLeeway)
		}
		c.leeway = d
		return nil
	})
}

// Verifier checks tokens minted by a [Minter] for one receiving service.
// It is immutable after [NewVerifier] and safe for concurrent use. The
// zero value rejects every token. Printing a Verifier shows only its
// algorithm and issuer.
type Verifier struct {
	alg     string
	issuer  string
	parser  *jwt.Parser
	keyFunc jwt.Keyfunc // holds the key
	revs    *Revocations
}

// NewVerifier returns a verifier for the key, issuer and audience the
// options give.
func NewVerifier(opts ...VerifyOption) (*Verifier, error) {
	var c verifyConfig
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyVerify(&c); err != nil {
			return nil, err
		}
	}
	switch {
	case c.nkeys == 0:
		return nil, errors.New("secrets: no verification key: use WithEd25519PublicKey or WithHMACVerifyKey")
	case c.nkeys > 1:
		return nil, errors.New("secrets: more than one verification key option")
	case c.issuer == "":
		return nil, errors.New("secrets: no expected issuer: use WithExpectedIssuer")
	case c.audience == "":
		return nil, errors.New("secrets: no expected audience: use WithExpectedAudience")
	}
	if c.now == nil {
		c.now = time.Now
	}
	alg, key := c.alg, c.key
	return &Verifier{
		alg:    alg,
		issuer: c.issuer,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{alg}),
			jwt.WithIssuer(c.issuer),
			jwt.WithAudience(c.audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(c.now),
			jwt.WithLeeway(c.leeway),
			jwt.WithStrictDecoding(),
		),
		keyFunc: func(t *jwt.Token) (any, error) {
			if t.Method == nil || t.Method.Alg() != alg {
				return nil, errTokenAlg
			}
			return key, nil
		},
		revs: c.revs,
	}, nil
}

// Verify checks token and returns its claims. It rejects, with an error
// wrapping [ErrInvalidToken], a token that is longer than 8 KiB or not
// three base64url segments; whose alg is not exactly the verifier's; whose
// signature does not verify; whose iss is not the expected issuer or
// whose aud lacks the expected audience; that is expired, not yet valid
// (nbf) or issued in the future (iat), within the leeway; that lacks jti,
// exp, task or agent; or whose jti is revoked. The error names the reason
// and never contains the token.
//
// Verify does not block (beyond a short read lock on the revocation list).
func (v *Verifier) Verify(token string) (*Claims, error) {
	if v == nil || v.parser == nil {
		return nil, errTokenNotConfigured
	}
	if len(token) > maxTokenLen {
		return nil, errTokenTooLong
	}
	if !compactJWS(token) {
		return nil, errTokenMalformed
	}
	var c jwtClaims
	t, err := v.parser.ParseWithClaims(token, &c, v.keyFunc)
	if err != nil {
		return nil, v.reason(err, t, &c)
	}
	switch {
	case c.ID == "":
		return nil, errTokenNoID
	case c.Task == "":
		return nil, errTokenNoTask
	case c.Agent == "":
		return nil, errTokenNoAgent
	}
	if v.revs.Revoked(c.ID) {
		return nil, errTokenRevoked
	}
	return &Claims{
		ID:        c.ID,
		Issuer:    c.Issuer,
		Subject:   c.Subject,
		Task:      c.Task,
		Agent:     c.Agent,
		Audience:  append([]string(nil), c.Audience...),
		Scope:     strings.Fields(c.Scope),
		IssuedAt:  numericTime(c.IssuedAt),
		NotBefore: numericTime(c.NotBefore),
		ExpiresAt: numericTime(c.ExpiresAt),
	}, nil
}

// compactJWS reports whether s is three non-empty-header base64url
// segments. Rejecting other bytes up front matters: base64 decoding skips
// CR and LF, so without this check a signature with a line break inserted
// would still verify.
func compactJWS(s string) bool {
	dots := 0
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b == '.':
			dots++
		case 'A' <= b && b <= 'Z', 'a' <= b && b <= 'z', '0' <= b && b <= '9', b == '-', b == '_':
		default:
			return false
		}
	}
	return dots == 2
}

// reason maps a jwt parse error to one of the fixed Verify errors. t and c
// are what ParseWithClaims returned and decoded.
func (v *Verifier) reason(err error, t *jwt.Token, c *jwtClaims) error {
	switch {
	case t == nil || errors.Is(err, jwt.ErrTokenMalformed):
		return errTokenMalformed
	case t.Method == nil || t.Method.Alg() != v.alg || errors.Is(err, jwt.ErrTokenUnverifiable):
		return errTokenAlg
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errTokenSignature
	case !errors.Is(err, jwt.ErrTokenInvalidClaims):
		return errTokenMalformed
	case c.Issuer != v.issuer || errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errTokenIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience) || len(c.Audience) == 0 || len(c.Audience) == 1 && c.Audience[0] == "":
		return errTokenAudience
	case c.ExpiresAt == nil:
		return errTokenNoExpiry
	case errors.Is(err, jwt.ErrTokenExpired):
		return errTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errTokenNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errTokenIssuedLater
	default:
		return errTokenClaims
	}
}

func numericTime(d *jwt.NumericDate) time.Time {
	if d == nil {
		return time.Time{}
	}
	return d.UTC()
}

// String returns "secrets.Verifier{alg: ALG, issuer: ISS}"; keys are never
// printed.
func (v Verifier) String() string {
	return "secrets.Verifier{alg: " + v.alg + ", issuer: " + v.issuer + "}"
}

// GoString is String.
func (v Verifier) GoString() string { return v.String() }

// Format prints String for every verb.
func (v Verifier) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, v.String()) }

// MarshalJSON returns the algorithm and issuer only.
func (v Verifier) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"alg": v.alg, "issuer": v.issuer})
}

// LogValue implements [slog.LogValuer] with the algorithm and issuer only.
func (v Verifier) LogValue() slog.Value {
	return slog.GroupValue(slog.String("alg", v.alg), slog.String("issuer", v.issuer))
}
