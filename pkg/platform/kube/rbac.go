package kube

import (
	"fmt"
	"regexp"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Rule is what the panel may do to one kind of object in its namespace.
type Rule struct {
	Group    string // API group; "" is the core group
	Resource string
	Verbs    []string
}

// Rules are the permissions the runtime needs in its namespace, no more:
// the Role of the Helm chart (deployments/kubernetes/mlpanel) is checked
// against them, and a test takes each verb away to prove it is needed.
var Rules = []Rule{
	// The project's anchor: every object of the project is owned by it,
	// so deleting it garbage-collects them.
	{Group: "", Resource: "configmaps", Verbs: []string{"get", "create", "delete"}},
	// Database addresses that hold a password.
	{Group: "", Resource: "secrets", Verbs: []string{"create", "patch", "delete"}},
	{Group: "", Resource: "services", Verbs: []string{"create", "patch", "delete"}},
	// A project's data; removed with the anchor, never by the panel.
	{Group: "", Resource: "persistentvolumeclaims", Verbs: []string{"get", "create"}},
	// Why a server does not get ready (image pulls, crash loops).
	{Group: "", Resource: "pods", Verbs: []string{"list"}},
	// A server's output, for the project's logs and lastError.
	{Group: "", Resource: "pods/log", Verbs: []string{"get"}},
	{Group: "apps", Resource: "deployments", Verbs: []string{"get", "list", "create", "patch", "delete"}},
}

// deniedRule finds the verb and resource in the API server's Forbidden
// message: `... cannot create resource "services" in API group ""`.
var deniedRule = regexp.MustCompile(`cannot (\S+) resource "([^"]+)"`)

// refused wraps an error of the API server with what was attempted; a
// missing permission says which verb on which resource to grant.
func (c *Cluster) refused(err error, verb, resource, name string) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf("%s %s %q in namespace %s", verb, resource, name, c.Namespace)
	if name == "" {
		what = fmt.Sprintf("%s %s in namespace %s", verb, resource, c.Namespace)
	}
	if apierrors.IsForbidden(err) {
		// The server names what it checked, which is not always the
		// call's verb (an apply that creates needs "create").
		if m := deniedRule.FindStringSubmatch(err.Error()); m != nil {
			verb, resource = m[1], m[2]
		}
		// Wrapped, not replaced: callers still see a Forbidden status
		// (a permanent failure, retrying cannot fix it).
		return fmt.Errorf("kubernetes refused to %s: the panel's service account needs the verb %q on %q (the Role of deployments/kubernetes/mlpanel grants it): %w",
			what, verb, resource, err)
	}
	return fmt.Errorf("kubernetes: %s: %w", what, err)
}

// PolicyRules are Rules as RBAC rules, for a Role.
func PolicyRules() []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, 0, len(Rules))
	for _, r := range Rules {
		out = append(out, rbacv1.PolicyRule{APIGroups: []string{r.Group}, Resources: []string{r.Resource}, Verbs: append([]string(nil), r.Verbs...)})
	}
	return out
}
