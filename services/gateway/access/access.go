// Package access is who may do what on a team server: users with API
// tokens (stored hashed, shown once), admins, and a role per project. It
// knows nothing about HTTP; the gateway maps routes to the requirement
// each one has.
package access

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"
)

// Role is a user's role on one project; each includes the ones before it.
type Role string

const (
	None   Role = ""
	Viewer Role = "viewer" // read
	Editor Role = "editor" // + experiments, runs, models, deployments
	Owner  Role = "owner"  // + project lifecycle and members
)

var rank = map[Role]int{None: 0, Viewer: 1, Editor: 2, Owner: 3}

// Includes reports whether r grants everything need grants.
func (r Role) Includes(need Role) bool { return rank[r] >= rank[need] }

// ParseRole checks a role given by a user.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case Viewer, Editor, Owner:
		return r, nil
	}
	return None, fmt.Errorf("role %q: want viewer, editor or owner", s)
}

// User is a person or a machine that calls the API. Name is what people
// type; ID is given at creation and never reused, and it is what tokens,
// memberships and ownership are bound to, so deleting a user and creating
// another with the same name hands the newcomer nothing of the old one.
type User struct {
	Name      string    `json:"name" bson:"_id"`
	ID        string    `json:"id" bson:"uid"`
	Admin     bool      `json:"admin" bson:"admin"`
	CreatedAt time.Time `json:"createdAt" bson:"createdAt"`
}

var userName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.@-]{0,62}$`)

// ValidateUserName checks a user name.
func ValidateUserName(name string) error {
	if !userName.MatchString(name) {
		return fmt.Errorf("invalid user name %q: start with a letter; at most 63 letters, digits, '_', '.', '@' or '-'", name)
	}
	return nil
}

// Token is an API token's record; the secret itself is never stored.
type Token struct {
	ID        string    `json:"id" bson:"_id"`
	User      string    `json:"user" bson:"user"`
	UserID    string    `json:"-" bson:"userId"`
	Name      string    `json:"name" bson:"name"`
	Hash      string    `json:"-" bson:"hash"`
	CreatedAt time.Time `json:"createdAt" bson:"createdAt"`
}

// Member is a user's role on a project (besides the project's creator,
// who owns it).
type Member struct {
	Project string `json:"project_id" bson:"project"`
	User    string `json:"user" bson:"user"` // the name, for display
	UserID  string `json:"-" bson:"userId"`
	Role    Role   `json:"role" bson:"role"`
}

// NewSecret makes a token secret: 32 random bytes, URL-safe, with a prefix
// that secret scanners and people recognise.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "mlp_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashSecret is how a secret is stored and looked up. Secrets carry 256
// random bits, so a fast hash is enough; there is nothing to brute-force.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// NewUserID makes a user's immutable id.
func NewUserID() string { return "u" + NewID() }

// legacyUserID is the id given to a user stored before users had ids:
// derived from the name and the creation time, so gateways migrating the
// same store at once agree on it, and a user re-created under that name
// (a later creation time) still gets another.
func legacyUserID(u User) string {
	h := sha256.Sum256([]byte(u.Name + "\x00" + u.CreatedAt.UTC().Format(time.RFC3339Nano)))
	return "u" + hex.EncodeToString(h[:8])
}

// NewID makes a short random identifier for tokens and audit entries.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
