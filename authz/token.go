package authz

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Task tokens hand a task to another process: [Task.Token] signs the
// task's scope for one audience (the receiving service's guard name), and
// [Guard.Resume] on a guard that trusts the signing key re-creates the task
// there, with the same ID, agent, intents, tools, clearance, labels,
// remaining budgets, deadline and taint, and its ancestors' views, so the
// remote guard decides as the local one would and can only narrow further.
//
// A token is a bearer token: whoever holds it acts as the task until it
// expires. Protect the channel (TLS), keep the audience narrow; binding a
// token to its sender is not part of it.

// DefaultTokenTTL bounds a task token's life unless [WithTokenTTL] says
// otherwise; a token never outlives its task's deadline.
const DefaultTokenTTL = 5 * time.Minute

// ErrToken is wrapped by every error of [Guard.Resume] for a token it
// refuses, and of [Task.Token] for one it cannot issue.
var ErrToken = errors.New("authz: task token refused")

// WithName names this guard: the audience task tokens for it carry, and the
// issuer of the tokens it signs. Required for [Guard.Resume] and
// [Task.Token].
func WithName(name string) Option {
	return func(g *Guard) error {
		if name == "" || len(name) > MaxInputSize {
			return fmt.Errorf("WithName: the name must have 1 to %d bytes", MaxInputSize)
		}
		g.name = name
		return nil
	}
}

// WithSigningKey sets the Ed25519 key that signs this guard's task tokens,
// and its key ID. The guard trusts its own signing key. The last
// WithSigningKey wins; rotate by giving the new key here and keeping the
// old public key with [WithTrustedKey] until its tokens expired.
func WithSigningKey(keyID string, key ed25519.PrivateKey) Option {
	return func(g *Guard) error {
		if keyID == "" || len(key) != ed25519.PrivateKeySize {
			return errors.New("WithSigningKey: want a key ID and an Ed25519 private key")
		}
		g.signKeyID, g.signKey = keyID, slices.Clone(key) // the caller may reuse or zero its slice
		return nil
	}
}

// WithTrustedKey makes [Guard.Resume] accept tokens signed by key under
// keyID. It may be repeated; a key ID given twice is an error.
func WithTrustedKey(keyID string, key ed25519.PublicKey) Option {
	return func(g *Guard) error {
		if keyID == "" || len(key) != ed25519.PublicKeySize {
			return errors.New("WithTrustedKey: want a key ID and an Ed25519 public key")
		}
		if g.trusted == nil {
			g.trusted = map[string]ed25519.PublicKey{}
		}
		if _, dup := g.trusted[keyID]; dup {
			return fmt.Errorf("WithTrustedKey: key ID %q given twice", keyID)
		}
		g.trusted[keyID] = slices.Clone(key)
		return nil
	}
}

// WithTokenTTL bounds the life of the task tokens this guard signs (by
// default [DefaultTokenTTL]).
func WithTokenTTL(d time.Duration) Option {
	return func(g *Guard) error {
		if d <= 0 {
			return fmt.Errorf("WithTokenTTL: %v is not positive", d)
		}
		g.tokenTTL = d
		return nil
	}
}

// taskClaims are a task token's claims.
type taskClaims struct {
	jwt.RegisteredClaims
	Task taskScope `json:"tg"`
}

// taskScope is one task of the chain as a token carries it.
type taskScope struct {
	ID        string              `json:"id"`
	Agent     string              `json:"agent"`
	Attrs     map[string]string   `json:"attrs,omitempty"`
	Purpose   string              `json:"purpose,omitempty"`
	Intents   []string            `json:"intents,omitempty"`
	Tools     []string            `json:"tools,omitempty"`
	Clearance Sensitivity         `json:"clearance"`
	Labels    map[string]string   `json:"labels,omitempty"`
	Scope     map[string][]string `json:"scope,omitempty"`
	Budgets   map[string]int      `json:"budgets,omitempty"` // calls left per pattern
	Deadline  int64               `json:"deadline"`          // Unix nanoseconds
	Taint     *Taint              `json:"taint,omitempty"`   // what the task had observed
	// Ancestors are the chain above the task, root first (only on the
	// token's own task).
	Ancestors []taskScope `json:"ancestors,omitempty"`
}

// Token returns a signed token that hands the task to the service whose
// guard is named audience ([WithName]). It expires after the guard's token
// TTL or at the task's deadline, whichever is first. It fails for an ended
// task and on a guard without a signing key or a name. The token is a
// bearer credential: never log it.
func (t *Task) Token(audience string) (string, error) {
	g := t.guard
	switch {
	case g == nil || g.signKey == nil || g.name == "":
		return "", fmt.Errorf("%w: the guard has no name or no signing key (WithName, WithSigningKey)", ErrToken)
	case audience == "" || len(audience) > MaxInputSize:
		return "", fmt.Errorf("%w: invalid audience", ErrToken)
	case t.Ended():
		return "", fmt.Errorf("%w: task %s has ended", ErrToken, t.id)
	}
	now := g.now()
	exp := now.Add(g.tokenTTL)
	if t.deadline.Before(exp) {
		exp = t.deadline
	}
	if !now.Before(exp) {
		return "", fmt.Errorf("%w: task %s passed its deadline", ErrToken, t.id)
	}
	scope := t.scope()
	for a := t.parent; a != nil; a = a.parent {
		scope.Ancestors = append(scope.Ancestors, a.scope())
	}
	slices.Reverse(scope.Ancestors)
	claims := taskClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    g.name,
			Subject:   t.agent.ID,
			Audience:  jwt.ClaimStrings{audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        rand.Text(),
		},
		Task: scope,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = g.signKeyID
	s, err := tok.SignedString(g.signKey)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrToken, err)
	}
	endedTasks.watch(t, exp)
	return s, nil
}

// scope returns t's scope for a token.
func (t *Task) scope() taskScope {
	s := taskScope{ID: t.id, Agent: t.agent.ID, Attrs: t.agent.Attrs, Purpose: t.purpose, Intents: t.intents,
		Tools: t.tools, Clearance: t.clearance, Labels: t.labels, Scope: t.scopeLists, Deadline: t.deadline.UnixNano()}
	if tt := t.Taint(); tt.Sensitivity > Public || tt.Untrusted || len(tt.Sources) > 0 {
		s.Taint = &tt
	}
	if len(t.budgets) > 0 {
		t.mu.Lock()
		s.Budgets = make(map[string]int, len(t.budgets))
		for _, b := range t.budgets {
			s.Budgets[b.pattern] = max(0, b.max-t.spent[b.pattern])
		}
		t.mu.Unlock()
	}
	return s
}

// Resume verifies a task token addressed to this guard and returns a
// context carrying the task it hands over, with the same ID, agent, scope,
// remaining budgets and deadline, under its ancestors' views. The token must
// be signed (EdDSA) by a key the guard trusts, name this guard as its
// audience, be within its lifetime, and its task and ancestors must not
// have ended on this guard. The resumed task is the caller's to End; it
// can be narrowed with Begin like any task. Errors wrap [ErrToken] and
// never contain the token.
func (g *Guard) Resume(ctx context.Context, token string) (context.Context, *Task, error) {
	if ctx == nil {
		return nil, nil, fmt.Errorf("%w: nil context", ErrToken)
	}
	if g.name == "" || len(g.trusted) == 0 && g.signKey == nil {
		return nil, nil, fmt.Errorf("%w: the guard has no name or trusts no key (WithName, WithTrustedKey)", ErrToken)
	}
	if len(token) > MaxCredentialSize*4 {
		return nil, nil, fmt.Errorf("%w: token too long", ErrToken)
	}
	var claims taskClaims
	if err := g.verifySigned(token, &claims); err != nil {
		return nil, nil, err
	}
	sc := claims.Task
	if sc.ID == "" || sc.Agent == "" || sc.Agent != claims.Subject {
		return nil, nil, fmt.Errorf("%w: the token's task claims are incomplete", ErrToken)
	}
	chain := append(slices.Clone(sc.Ancestors), sc)
	for _, s := range chain {
		if endedTasks.ended(s.ID) {
			return nil, nil, fmt.Errorf("%w: task %s has ended", ErrToken, s.ID)
		}
	}
	var parent *Task
	for _, s := range chain {
		t, err := g.resumeTask(s, parent)
		if err != nil {
			if parent != nil {
				parent.root().End()
			}
			return nil, nil, fmt.Errorf("%w: task %s: %v", ErrToken, s.ID, err)
		}
		parent = t
	}
	t := parent
	if g.store != nil {
		// The store knows what ended and what was observed elsewhere; it
		// learns the chain here if the issuer does not share it.
		if err := g.beginShared(ctx, t); err != nil {
			t.root().End()
			return nil, nil, fmt.Errorf("%w: %v", ErrToken, err)
		}
		for _, x := range t.chain() {
			g.view.add(x)
		}
	}
	t.origin = claims.Issuer
	t.reportFrom = len(t.Taint().Sources) // report only what is new here
	// The ancestors exist only as views for this task: they end with it.
	// Ending a resumed copy does not end the task it copies: only the
	// task that issued the token can, and then its tokens are refused in
	// the issuing process (and everywhere with a shared task store).
	if root := t.root(); root != t {
		t.OnEnd(root.End)
	}
	if g.realClock {
		t.mu.Lock()
		if !t.done {
			t.timer = time.AfterFunc(time.Until(t.deadline), t.End)
		}
		t.mu.Unlock()
	}
	return context.WithValue(ctx, taskKey{}, t), t, nil
}

// resumeTask builds one task of a resumed chain, checking it against the
// bounds of Begin and narrowing it under parent.
func (g *Guard) resumeTask(s taskScope, parent *Task) (*Task, error) {
	spec := TaskSpec{Agent: Agent{ID: s.Agent, Attrs: s.Attrs}, Purpose: s.Purpose, Intents: s.Intents, Tools: s.Tools,
		Clearance: s.Clearance, Labels: s.Labels, Scope: s.Scope, MaxCalls: s.Budgets}
	deadline := time.Unix(0, s.Deadline)
	now := g.now()
	if !now.Before(deadline) {
		return nil, errors.New("passed its deadline")
	}
	spec.TTL = deadline.Sub(now)
	t, err := g.newTask(parent, spec)
	if err != nil {
		return nil, err
	}
	t.id = s.ID
	t.resumed = true
	if tt := s.Taint; tt != nil {
		if !tt.Sensitivity.Valid() {
			return nil, errors.New("invalid taint sensitivity")
		}
		t.observe("", tt.Sensitivity, !tt.Untrusted)
		for i, src := range tt.Sources {
			if i == maxTaintSources {
				break
			}
			t.observe(src, tt.Sensitivity, true)
		}
	}
	// newTask measured the deadline from its own now: pin it to the
	// token's, in the guard's clock (monotonic under the real clock).
	t.deadline = now.Add(spec.TTL)
	if parent != nil && t.deadline.After(parent.deadline) {
		t.deadline = parent.deadline
	}
	if parent != nil {
		parent.mu.Lock()
		parent.children = append(parent.children, t)
		parent.mu.Unlock()
	}
	return t, nil
}

// reportClaims are a task report's claims: what a resumed task observed,
// for the guard that handed it over.
type reportClaims struct {
	jwt.RegisteredClaims
	Taint Taint `json:"taint"`
}

// Report returns a signed report of what the task has observed so far (its
// taint: highest sensitivity, untrusted content, and the sources observed
// since it was resumed) for the guard
// that handed the task over: a task resumed from a token reports to the
// token's issuer. The tool service returns it with its result (an HTTP
// header, an MCP _meta field) and the caller applies it with
// [Guard.ApplyReport], so what a remote tool read taints the caller's task.
// It fails for a task that was not resumed, and on a guard without a name
// or signing key. Like a token, a report is short-lived.
func (t *Task) Report() (string, error) {
	g := t.guard
	switch {
	case g == nil || g.signKey == nil || g.name == "":
		return "", fmt.Errorf("%w: the guard has no name or no signing key (WithName, WithSigningKey)", ErrToken)
	case t.origin == "":
		return "", fmt.Errorf("%w: task %s was not resumed from a token: there is nobody to report to", ErrToken, t.id)
	}
	now := g.now()
	claims := reportClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    g.name,
			Subject:   t.id,
			Audience:  jwt.ClaimStrings{t.origin},
			ExpiresAt: jwt.NewNumericDate(now.Add(g.tokenTTL)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        rand.Text(),
		},
		Taint: t.Taint(),
	}
	claims.Taint.Sources = claims.Taint.Sources[min(t.reportFrom, len(claims.Taint.Sources)):]
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = g.signKeyID
	rep, err := tok.SignedString(g.signKey)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrToken, err)
	}
	return rep, nil
}

// ApplyReport verifies a report made by [Task.Report] on a guard whose key
// this guard trusts, addressed to this guard, about the task in ctx (or one
// of its ancestors), and records what it says the task observed: the
// sensitivity, the untrusted flag and the sources, each source prefixed
// with the reporting guard's name. Applying a report twice changes
// nothing: taint only grows. Errors wrap [ErrToken].
func (g *Guard) ApplyReport(ctx context.Context, report string) error {
	t, ok := TaskFrom(ctx)
	if !ok {
		return fmt.Errorf("%w: no task in the context", ErrToken)
	}
	if g.name == "" {
		return fmt.Errorf("%w: the guard has no name (WithName)", ErrToken)
	}
	if len(report) > MaxCredentialSize*4 {
		return fmt.Errorf("%w: report too long", ErrToken)
	}
	var claims reportClaims
	if err := g.verifySigned(report, &claims); err != nil {
		return err
	}
	target := t
	for target != nil && target.id != claims.Subject {
		target = target.parent
	}
	if target == nil {
		return fmt.Errorf("%w: the report is about another task", ErrToken)
	}
	tt := claims.Taint
	if !tt.Sensitivity.Valid() {
		return fmt.Errorf("%w: the report has an invalid sensitivity", ErrToken)
	}
	if len(tt.Sources) == 0 {
		target.Observe("", tt.Sensitivity, !tt.Untrusted)
	}
	for i, src := range tt.Sources {
		if i == maxTaintSources {
			break
		}
		target.Observe(claims.Issuer+": "+src, tt.Sensitivity, !tt.Untrusted)
	}
	return nil
}

// verifySigned verifies a token or report addressed to this guard: EdDSA
// by a trusted key, this guard's name in the audience, within its
// lifetime. The error wraps ErrToken and says why without quoting it.
func (g *Guard) verifySigned(token string, claims jwt.Claims) error {
	_, err := jwt.ParseWithClaims(token, claims, g.tokenKey,
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithAudience(g.name),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(g.now),
		jwt.WithStrictDecoding(),
	)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrToken, tokenReason(err))
	}
	return nil
}

// tokenKey finds the trusted key of a token by its key ID.
func (g *Guard) tokenKey(tok *jwt.Token) (any, error) {
	kid, _ := tok.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("the token names no key")
	}
	if k, ok := g.trusted[kid]; ok {
		return k, nil
	}
	if g.signKey != nil && kid == g.signKeyID {
		return g.signKey.Public(), nil
	}
	return nil, errors.New("the token's key is not trusted")
}

// tokenReason says why a token was refused, without quoting it.
func tokenReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unknown or untrusted key, or an algorithm other than EdDSA"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token is for another audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token lacks a required claim"
	}
	return "invalid token"
}

// endedTasks remembers, for this process, the tasks that handed out or
// received tokens and then ended, until those tokens expire: Resume on any
// guard of the process refuses them. (Across processes, the shared task
// store does.)
var endedTasks taskLedger

// taskLedger is a set of ended task IDs, each kept until the last token of
// its task expires.
type taskLedger struct {
	mu sync.Mutex
	// watched maps a live task with tokens to their latest expiry; ended
	// maps an ended one to the time it can be forgotten.
	watched map[string]time.Time
	endedAt map[string]time.Time
}

// watch records that tokens of t are valid until exp and arranges for t's
// end to be remembered until then.
func (l *taskLedger) watch(t *Task, exp time.Time) {
	l.mu.Lock()
	if l.watched == nil {
		l.watched, l.endedAt = map[string]time.Time{}, map[string]time.Time{}
	}
	prev, seen := l.watched[t.id]
	if exp.After(prev) {
		l.watched[t.id] = exp
	}
	l.mu.Unlock()
	if !seen {
		t.OnEnd(func() { l.end(t.id, t.guard.now()) })
	}
}

// end moves id from watched to ended, and forgets ended tasks whose tokens
// all expired.
func (l *taskLedger) end(id string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if exp, ok := l.watched[id]; ok {
		delete(l.watched, id)
		l.endedAt[id] = exp
	}
	maps.DeleteFunc(l.endedAt, func(_ string, exp time.Time) bool { return now.After(exp.Add(time.Minute)) })
}

// ended reports whether the task id had tokens and has ended.
func (l *taskLedger) ended(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.endedAt[id]
	return ok
}
