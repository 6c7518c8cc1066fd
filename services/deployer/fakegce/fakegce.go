// Package fakegce is a fake Compute Engine REST server for tests: it keeps
// instances, firewall rules and operations in memory, records every
// request, injects the failures real projects meet (an operation that
// ends in an error, 403, quota), and can start a real local model server
// for an inserted instance, so predict works end to end.
//
// Point the deployer at it with MLPANEL_GCP_ENDPOINT (the client then
// uses option.WithEndpoint and option.WithoutAuthentication).
package fakegce

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"

	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Request is one call the fake received.
type Request struct {
	Method string
	Path   string
	Body   []byte
}

// Fault is an HTTP error the next matching call answers with.
type Fault struct {
	Status  int
	Reason  string // e.g. forbidden, quotaExceeded
	Message string
}

// OpFault makes the operation of the next insert finish with an error.
type OpFault struct {
	Code    string // e.g. QUOTA_EXCEEDED, ZONE_RESOURCE_POOL_EXHAUSTED
	Message string
}

// Server is the fake.
type Server struct {
	URL string
	srv *httptest.Server

	// Serve starts a model server for an instance that turned RUNNING
	// and returns how to stop it; nil serves nothing.
	Serve func(inst *computepb.Instance, ip string) (stop func(), err error)
	// OpPolls is how many polls an operation answers RUNNING before DONE.
	OpPolls int
	// GetsUntilRunning is how many gets an instance answers PROVISIONING.
	GetsUntilRunning int

	mu        sync.Mutex
	requests  []Request
	instances map[string]*instance
	firewalls map[string]*computepb.Firewall
	ops       map[string]*operation
	seq       int
	insertErr *Fault
	opErr     *OpFault
	nextIP    int
}

type instance struct {
	pb   *computepb.Instance
	gets int
	stop func()
}

type operation struct {
	pb    *computepb.Operation
	polls int
}

// New starts the fake on a loopback port.
func New() *Server {
	s := &Server{
		instances: map[string]*instance{},
		firewalls: map[string]*computepb.Firewall{},
		ops:       map[string]*operation{},
	}
	mux := http.NewServeMux()
	const zone = "/compute/v1/projects/{project}/zones/{zone}"
	const global = "/compute/v1/projects/{project}/global"
	mux.HandleFunc("POST "+zone+"/instances", s.insertInstance)
	mux.HandleFunc("GET "+zone+"/instances/{name}", s.getInstance)
	mux.HandleFunc("DELETE "+zone+"/instances/{name}", s.deleteInstance)
	mux.HandleFunc("GET "+zone+"/operations/{name}", s.getOperation)
	mux.HandleFunc("GET "+global+"/operations/{name}", s.getOperation)
	mux.HandleFunc("GET "+global+"/firewalls/{name}", s.getFirewall)
	mux.HandleFunc("POST "+global+"/firewalls", s.insertFirewall)
	mux.HandleFunc("PATCH "+global+"/firewalls/{name}", s.patchFirewall)
	s.srv = httptest.NewServer(s.record(mux))
	s.URL = s.srv.URL
	return s
}

// Close stops every model server the fake started, then the fake.
func (s *Server) Close() {
	s.mu.Lock()
	var stops []func()
	for _, in := range s.instances {
		if in.stop != nil {
			stops = append(stops, in.stop)
		}
	}
	s.instances = map[string]*instance{}
	s.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	s.srv.Close()
}

// FailNextInsert makes the next instance insert answer f.
func (s *Server) FailNextInsert(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.insertErr = &f
}

// FailNextInsertOperation makes the next insert's operation end with f.
func (s *Server) FailNextInsertOperation(f OpFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opErr = &f
}

// Requests returns the calls received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Instances returns the names of the instances that exist.
func (s *Server) Instances() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.instances {
		names = append(names, n)
	}
	return names
}

// Firewall returns a rule, if it exists.
func (s *Server) Firewall(name string) (*computepb.Firewall, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fw, ok := s.firewalls[name]
	return fw, ok
}

// Kill makes an instance vanish as if it were deleted behind the panel's
// back (a preemption, a user in the console).
func (s *Server) Kill(name string) {
	s.mu.Lock()
	in, ok := s.instances[name]
	delete(s.instances, name)
	s.mu.Unlock()
	if ok && in.stop != nil {
		in.stop()
	}
}

func (s *Server) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Body: body})
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := protojson.Marshal(m)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// writeError answers the Google API error shape googleapi parses.
func writeError(w http.ResponseWriter, f Fault) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": f.Status, "message": f.Message,
		"errors": []map[string]string{{"reason": f.Reason, "message": f.Message, "domain": "global"}},
	}})
}

func notFound(w http.ResponseWriter, what string) {
	writeError(w, Fault{Status: http.StatusNotFound, Reason: "notFound", Message: "The resource '" + what + "' was not found"})
}

// newOp registers an operation; the caller holds mu.
func (s *Server) newOp(r *http.Request, kind, target string, fault *OpFault) *computepb.Operation {
	s.seq++
	name := "operation-" + strconv.Itoa(s.seq)
	op := &computepb.Operation{
		Name:          proto.String(name),
		OperationType: proto.String(kind),
		TargetLink:    proto.String(target),
		Status:        computepb.Operation_RUNNING.Enum(),
	}
	if z := r.PathValue("zone"); z != "" {
		op.Zone = proto.String(z)
	}
	if fault != nil {
		op.Error = &computepb.Error{Errors: []*computepb.Errors{{Code: proto.String(fault.Code), Message: proto.String(fault.Message)}}}
	}
	if s.OpPolls <= 0 {
		op.Status = computepb.Operation_DONE.Enum()
	}
	s.ops[name] = &operation{pb: op}
	return proto.Clone(op).(*computepb.Operation)
}

func (s *Server) getOperation(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	op, ok := s.ops[r.PathValue("name")]
	if ok {
		op.polls++
		if op.polls >= s.OpPolls {
			op.pb.Status = computepb.Operation_DONE.Enum()
		}
	}
	var out *computepb.Operation
	if ok {
		out = proto.Clone(op.pb).(*computepb.Operation)
	}
	s.mu.Unlock()
	if !ok {
		notFound(w, r.URL.Path)
		return
	}
	writeProto(w, out)
}

func (s *Server) insertInstance(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	inst := &computepb.Instance{}
	if err := protojson.Unmarshal(body, inst); err != nil {
		writeError(w, Fault{Status: http.StatusBadRequest, Reason: "invalid", Message: "malformed instance: " + err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.insertErr; f != nil {
		s.insertErr = nil
		writeError(w, *f)
		return
	}
	if _, dup := s.instances[inst.GetName()]; dup {
		writeError(w, Fault{Status: http.StatusConflict, Reason: "alreadyExists", Message: "The resource '" + inst.GetName() + "' already exists"})
		return
	}
	fault := s.opErr
	s.opErr = nil
	op := s.newOp(r, "insert", inst.GetName(), fault)
	if fault == nil {
		inst.Status = proto.String("PROVISIONING")
		s.instances[inst.GetName()] = &instance{pb: inst}
	}
	writeProto(w, op)
}

func (s *Server) getInstance(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	in, ok := s.instances[r.PathValue("name")]
	if !ok {
		s.mu.Unlock()
		notFound(w, r.URL.Path)
		return
	}
	in.gets++
	start := in.pb.GetStatus() != "RUNNING" && in.gets > s.GetsUntilRunning
	var ip string
	if start {
		s.nextIP++
		// Each instance gets its own loopback address, so every model
		// server can listen on the same serving port, as on real VMs.
		ip = fmt.Sprintf("127.0.0.%d", 10+s.nextIP%240)
		in.pb.Status = proto.String("RUNNING")
		for _, ni := range in.pb.GetNetworkInterfaces() {
			for _, ac := range ni.GetAccessConfigs() {
				ac.NatIP = proto.String(ip)
			}
		}
	}
	out := proto.Clone(in.pb).(*computepb.Instance)
	serve := s.Serve
	s.mu.Unlock()
	if start && serve != nil {
		stop, err := serve(out, ip)
		s.mu.Lock()
		if cur, ok := s.instances[out.GetName()]; ok && err == nil {
			cur.stop = stop
		} else if err == nil && stop != nil {
			stop() // deleted meanwhile
		}
		s.mu.Unlock()
	}
	writeProto(w, out)
}

func (s *Server) deleteInstance(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	name := r.PathValue("name")
	in, ok := s.instances[name]
	if !ok {
		s.mu.Unlock()
		notFound(w, r.URL.Path)
		return
	}
	delete(s.instances, name)
	op := s.newOp(r, "delete", name, nil)
	s.mu.Unlock()
	if in.stop != nil {
		in.stop()
	}
	writeProto(w, op)
}

func (s *Server) getFirewall(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	fw, ok := s.firewalls[r.PathValue("name")]
	s.mu.Unlock()
	if !ok {
		notFound(w, r.URL.Path)
		return
	}
	writeProto(w, fw)
}

func (s *Server) insertFirewall(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	fw := &computepb.Firewall{}
	if err := protojson.Unmarshal(body, fw); err != nil {
		writeError(w, Fault{Status: http.StatusBadRequest, Reason: "invalid", Message: "malformed firewall: " + err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.firewalls[fw.GetName()]; dup {
		writeError(w, Fault{Status: http.StatusConflict, Reason: "alreadyExists", Message: "The resource '" + fw.GetName() + "' already exists"})
		return
	}
	s.firewalls[fw.GetName()] = fw
	writeProto(w, s.newOp(r, "insert", fw.GetName(), nil))
}

func (s *Server) patchFirewall(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	fw := &computepb.Firewall{}
	if err := protojson.Unmarshal(body, fw); err != nil {
		writeError(w, Fault{Status: http.StatusBadRequest, Reason: "invalid", Message: "malformed firewall: " + err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.firewalls[r.PathValue("name")]
	if !ok {
		notFound(w, r.URL.Path)
		return
	}
	proto.Merge(cur, fw)
	cur.Allowed = fw.Allowed
	cur.TargetTags = fw.TargetTags
	writeProto(w, s.newOp(r, "patch", cur.GetName(), nil))
}
