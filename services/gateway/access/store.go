package access

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

var (
	ErrNotFound  = errors.New("not found")
	ErrDuplicate = errors.New("already exists")
)

// Store keeps users, tokens, members and the audit log in the gateway's
// own collections.
type Store struct {
	users, tokens, members, audit, sessions *mongo.Collection
}

// NewStore prepares the collections and their indexes.
func NewStore(ctx context.Context, db *mongo.Database) (*Store, error) {
	s := &Store{
		users:   db.Collection("users"),
		tokens:  db.Collection("tokens"),
		members: db.Collection("members"),
		audit:   db.Collection("audit"),
		// Browser sign-ins: found by the hash of the cookie's secret.
		sessions: db.Collection("sessions"),
	}
	// Before the unique indexes on ids: older records have none yet.
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	idx := []struct {
		c    *mongo.Collection
		keys bson.D
		uniq bool
	}{
		{s.tokens, bson.D{{Key: "hash", Value: 1}}, true},
		{s.tokens, bson.D{{Key: "user", Value: 1}}, false},
		{s.tokens, bson.D{{Key: "userId", Value: 1}}, false},
		{s.users, bson.D{{Key: "uid", Value: 1}}, true},
		{s.members, bson.D{{Key: "project", Value: 1}, {Key: "userId", Value: 1}}, true},
		{s.members, bson.D{{Key: "userId", Value: 1}}, false},
		{s.audit, bson.D{{Key: "time", Value: -1}}, false},
		{s.sessions, bson.D{{Key: "userId", Value: 1}}, false},
	}
	for _, i := range idx {
		if _, err := i.c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: i.keys, Options: options.Index().SetUnique(i.uniq)}); err != nil {
			return nil, fmt.Errorf("creating index on %s: %w", i.c.Name(), err)
		}
	}
	return s, nil
}

// migrate binds records stored before users had ids to ids: each user
// gets one, tokens and memberships get their user's, and those of users
// that no longer exist are dropped (they could only have been handed to
// a newcomer of the same name). It touches only records without an id,
// so after the first start it reads three empty result sets.
func (s *Store) migrate(ctx context.Context) error {
	legacy, err := findAll[User](ctx, s.users, bson.D{{Key: "uid", Value: bson.D{{Key: "$exists", Value: false}}}}, nil)
	if err != nil {
		return fmt.Errorf("migrating users to ids: %w", err)
	}
	for _, u := range legacy {
		if _, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: u.Name}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "uid", Value: legacyUserID(u)}}}}); err != nil {
			return fmt.Errorf("giving user %s an id: %w", u.Name, err)
		}
	}
	noID := bson.D{{Key: "userId", Value: bson.D{{Key: "$exists", Value: false}}}}
	for _, c := range []*mongo.Collection{s.tokens, s.members} {
		type rec struct {
			ID   any    `bson:"_id"`
			User string `bson:"user"`
		}
		recs, err := findAll[rec](ctx, c, noID, nil)
		if err != nil {
			return fmt.Errorf("migrating %s to user ids: %w", c.Name(), err)
		}
		for _, r := range recs {
			u, err := s.User(ctx, r.User)
			switch {
			case errors.Is(err, ErrNotFound):
				_, err = c.DeleteOne(ctx, bson.D{{Key: "_id", Value: r.ID}})
			case err == nil:
				_, err = c.UpdateOne(ctx, bson.D{{Key: "_id", Value: r.ID}},
					bson.D{{Key: "$set", Value: bson.D{{Key: "userId", Value: u.ID}}}})
			}
			if err != nil {
				return fmt.Errorf("migrating %s of %s to user ids: %w", c.Name(), r.User, err)
			}
		}
	}
	return nil
}

func isDuplicate(err error) bool {
	// FerretDB v1 on SQLite may report a unique violation as SQLite's message.
	return mongo.IsDuplicateKeyError(err) || strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// CreateUser adds a user with a new id (set in u); ErrDuplicate when the
// name is taken.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	u.ID = NewUserID()
	if _, err := s.users.InsertOne(ctx, u); err != nil {
		if isDuplicate(err) {
			return ErrDuplicate
		}
		return fmt.Errorf("creating user %s: %w", u.Name, err)
	}
	return nil
}

// User returns one user.
func (s *Store) User(ctx context.Context, name string) (User, error) {
	var u User
	err := s.users.FindOne(ctx, bson.D{{Key: "_id", Value: name}}).Decode(&u)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("reading user %s: %w", name, err)
	}
	return u, nil
}

// UserByID returns the user with that id: a token or membership of a
// deleted user finds nobody, even if the name was given again.
func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	var u User
	err := s.users.FindOne(ctx, bson.D{{Key: "uid", Value: id}}).Decode(&u)
	if errors.Is(err, mongo.ErrNoDocuments) || (err == nil && id == "") {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("reading user %s: %w", id, err)
	}
	return u, nil
}

// Users lists every user by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	return findAll[User](ctx, s.users, bson.D{}, bson.D{{Key: "_id", Value: 1}})
}

// CountAdmins tells whether the first admin still has to be made.
func (s *Store) CountAdmins(ctx context.Context) (int64, error) {
	n, err := s.users.CountDocuments(ctx, bson.D{{Key: "admin", Value: true}})
	if err != nil {
		return 0, fmt.Errorf("counting admins: %w", err)
	}
	return n, nil
}

// DeleteUser removes a user with their tokens and memberships. Projects
// they created stay, with nobody but admins and other members: a later
// user of the same name has another id and so does not own them.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	u, err := s.User(ctx, name)
	if err != nil {
		return err
	}
	// Tokens first: if a step fails, the user is still there to retry on,
	// and the bindings to the id keep a newcomer out either way.
	if _, err := s.tokens.DeleteMany(ctx, bson.D{{Key: "userId", Value: u.ID}}); err != nil {
		return fmt.Errorf("deleting tokens of %s: %w", name, err)
	}
	if _, err := s.members.DeleteMany(ctx, bson.D{{Key: "userId", Value: u.ID}}); err != nil {
		return fmt.Errorf("deleting memberships of %s: %w", name, err)
	}
	if _, err := s.sessions.DeleteMany(ctx, bson.D{{Key: "userId", Value: u.ID}}); err != nil {
		return fmt.Errorf("ending the sign-ins of %s: %w", name, err)
	}
	res, err := s.users.DeleteOne(ctx, bson.D{{Key: "_id", Value: name}, {Key: "uid", Value: u.ID}})
	if err != nil {
		return fmt.Errorf("deleting user %s: %w", name, err)
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// AddToken stores a token record.
func (s *Store) AddToken(ctx context.Context, t Token) error {
	if _, err := s.tokens.InsertOne(ctx, t); err != nil {
		return fmt.Errorf("storing token: %w", err)
	}
	return nil
}

// TokenByHash finds the token a secret belongs to.
func (s *Store) TokenByHash(ctx context.Context, hash string) (Token, error) {
	var t Token
	err := s.tokens.FindOne(ctx, bson.D{{Key: "hash", Value: hash}}).Decode(&t)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Token{}, ErrNotFound
	}
	if err != nil {
		return Token{}, fmt.Errorf("reading token: %w", err)
	}
	return t, nil
}

// Tokens lists a user's tokens (without secrets).
func (s *Store) Tokens(ctx context.Context, userID string) ([]Token, error) {
	return findAll[Token](ctx, s.tokens, bson.D{{Key: "userId", Value: userID}}, bson.D{{Key: "createdAt", Value: 1}})
}

// DeleteToken revokes one token of a user.
func (s *Store) DeleteToken(ctx context.Context, userID, id string) error {
	res, err := s.tokens.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "userId", Value: userID}})
	if err != nil {
		return fmt.Errorf("deleting token %s: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// SetMember gives user a role on project, replacing any earlier one.
func (s *Store) SetMember(ctx context.Context, m Member) error {
	_, err := s.members.ReplaceOne(ctx,
		bson.D{{Key: "project", Value: m.Project}, {Key: "userId", Value: m.UserID}}, m,
		options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("setting %s's role on project %s: %w", m.User, m.Project, err)
	}
	return nil
}

// RemoveMember takes a user's role on a project away.
func (s *Store) RemoveMember(ctx context.Context, project, userID string) error {
	res, err := s.members.DeleteOne(ctx, bson.D{{Key: "project", Value: project}, {Key: "userId", Value: userID}})
	if err != nil {
		return fmt.Errorf("removing %s from project %s: %w", userID, project, err)
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// Members lists a project's members.
func (s *Store) Members(ctx context.Context, project string) ([]Member, error) {
	return findAll[Member](ctx, s.members, bson.D{{Key: "project", Value: project}}, bson.D{{Key: "user", Value: 1}})
}

// Role is the user's explicit role on project (None if not a member).
func (s *Store) Role(ctx context.Context, project, userID string) (Role, error) {
	if userID == "" {
		return None, nil
	}
	var m Member
	err := s.members.FindOne(ctx, bson.D{{Key: "project", Value: project}, {Key: "userId", Value: userID}}).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return None, nil
	}
	if err != nil {
		return None, fmt.Errorf("reading %s's role on project %s: %w", userID, project, err)
	}
	return m.Role, nil
}

// ProjectsOf lists the projects a user is a member of.
func (s *Store) ProjectsOf(ctx context.Context, userID string) ([]string, error) {
	if userID == "" {
		return []string{}, nil
	}
	ms, err := findAll[Member](ctx, s.members, bson.D{{Key: "userId", Value: userID}}, nil)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.Project
	}
	return ids, nil
}

// Session is a browser's sign-in: the cookie holds a secret whose hash is
// the key; CSRF is the token a script may send instead of a same-origin
// Origin header.
type Session struct {
	Hash      string    `bson:"_id"`
	UserID    string    `bson:"userId"`
	TokenID   string    `bson:"tokenId"` // revoking the token ends the sign-in
	CSRF      string    `bson:"csrf"`
	ExpiresAt time.Time `bson:"expiresAt"`
}

// AddSession stores a sign-in.
func (s *Store) AddSession(ctx context.Context, se Session) error {
	if _, err := s.sessions.InsertOne(ctx, se); err != nil {
		return fmt.Errorf("storing sign-in: %w", err)
	}
	return nil
}

// SessionByHash finds a sign-in that has not expired.
func (s *Store) SessionByHash(ctx context.Context, hash string, now time.Time) (Session, error) {
	var se Session
	err := s.sessions.FindOne(ctx, bson.D{{Key: "_id", Value: hash}}).Decode(&se)
	if errors.Is(err, mongo.ErrNoDocuments) || (err == nil && !now.Before(se.ExpiresAt)) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("reading sign-in: %w", err)
	}
	return se, nil
}

// DeleteSession ends a sign-in.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	if _, err := s.sessions.DeleteOne(ctx, bson.D{{Key: "_id", Value: hash}}); err != nil {
		return fmt.Errorf("ending sign-in: %w", err)
	}
	return nil
}

// TokenByID finds a token record, to check that a sign-in's token lives.
func (s *Store) TokenByID(ctx context.Context, id string) (Token, error) {
	var t Token
	err := s.tokens.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&t)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Token{}, ErrNotFound
	}
	if err != nil {
		return Token{}, fmt.Errorf("reading token: %w", err)
	}
	return t, nil
}

// Entry is one audited call.
type Entry struct {
	ID        string    `json:"id" bson:"_id"`
	Time      time.Time `json:"time" bson:"time"`
	User      string    `json:"user" bson:"user"`
	Method    string    `json:"method" bson:"method"`
	Path      string    `json:"path" bson:"path"`
	Route     string    `json:"route" bson:"route"`
	Project   string    `json:"project_id,omitempty" bson:"project,omitempty"`
	Status    int       `json:"status" bson:"status"`
	RequestID string    `json:"request_id,omitempty" bson:"requestId,omitempty"`
	Remote    string    `json:"remote" bson:"remote"`
}

// Record appends an audit entry.
func (s *Store) Record(ctx context.Context, e Entry) error {
	if _, err := s.audit.InsertOne(ctx, e); err != nil {
		if isDuplicate(err) {
			return nil // delivered again after a crash: it is there already
		}
		return fmt.Errorf("recording audit entry: %w", err)
	}
	return nil
}

// AuditQuery selects audit entries; zero fields match everything.
type AuditQuery struct {
	Project, User string
	Since, Until  time.Time
	Skip, Limit   int64
}

// Audit returns the newest entries first and the total that match.
func (s *Store) Audit(ctx context.Context, q AuditQuery) ([]Entry, int64, error) {
	f := bson.D{}
	if q.Project != "" {
		f = append(f, bson.E{Key: "project", Value: q.Project})
	}
	if q.User != "" {
		f = append(f, bson.E{Key: "user", Value: q.User})
	}
	tr := bson.D{}
	if !q.Since.IsZero() {
		tr = append(tr, bson.E{Key: "$gte", Value: q.Since})
	}
	if !q.Until.IsZero() {
		tr = append(tr, bson.E{Key: "$lt", Value: q.Until})
	}
	if len(tr) > 0 {
		f = append(f, bson.E{Key: "time", Value: tr})
	}
	total, err := s.audit.CountDocuments(ctx, f)
	if err != nil {
		return nil, 0, fmt.Errorf("counting audit entries: %w", err)
	}
	opts := options.Find().SetSort(bson.D{{Key: "time", Value: -1}, {Key: "_id", Value: -1}}).SetSkip(q.Skip)
	if q.Limit > 0 {
		opts.SetLimit(q.Limit)
	}
	cur, err := s.audit.Find(ctx, f, opts)
	if err != nil {
		return nil, 0, fmt.Errorf("reading audit entries: %w", err)
	}
	out := []Entry{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, 0, fmt.Errorf("reading audit entries: %w", err)
	}
	return out, total, nil
}

func findAll[T any](ctx context.Context, c *mongo.Collection, filter, sort bson.D) ([]T, error) {
	opts := options.Find()
	if sort != nil {
		opts.SetSort(sort)
	}
	cur, err := c.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.Name(), err)
	}
	out := []T{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.Name(), err)
	}
	return out, nil
}
