// Package kubetest runs a real Kubernetes control plane for tests: Debian's
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler built
// from the module proxy, and kwok, which plays the kubelet of fake nodes
// (pods are scheduled and reported Running and Ready; nothing executes in
// them). The API server authorises with RBAC, so tests can check what a
// restricted service account may do. Everything is stopped and removed
// when the test ends. Tests fail (never skip) when a part is missing, and
// say how to get it.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/servertest"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Version is the Kubernetes release the harness runs (and client-go matches).
const Version = "1.36.3"

// Build is how to get the control plane's binaries.
const Build = "run scripts/engines-kubernetes.sh (builds kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the Go module proxy into ~/.cache/mlpanel/engines/k8s-" + Version + "/bin, ~15 min once per machine; .ci/run does it)"

// Install is how to get etcd and kubectl.
const Install = "apt-get install -y etcd-server kubernetes-client (Debian's packages; .ci/run installs them)"

// BinDir is where the control plane's binaries are: MLPANEL_K8S_BIN, or
// the cache scripts/engines-kubernetes.sh builds into.
func BinDir() string {
	if d := os.Getenv("MLPANEL_K8S_BIN"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "mlpanel", "engines", "k8s-"+Version, "bin")
}

// Cluster is a running control plane.
type Cluster struct {
	// Admin is a client config of a member of system:masters.
	Admin     *rest.Config
	Client    kubernetes.Interface
	Namespace string   // a namespace made for the test
	Nodes     []string // the fake nodes
	dir       string
	logs      map[string]string // component -> log file
}

// Start runs a control plane with two fake nodes, 40 volumes for claims
// to bind to, and a namespace for the test.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin := BinDir()
	for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("%s is missing from %s: %s", b, bin, Build)
		}
	}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd is not installed: %s", Install)
	}
	dir, err := os.MkdirTemp("", "mlpanel-kube-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{dir: dir, logs: map[string]string{}}
	t.Cleanup(func() { os.RemoveAll(dir) }) // registered first, runs after the processes stopped

	ip := hostIP(t)
	pki := newPKI(t, dir, ip)
	token := randomHex(t)
	tokens := filepath.Join(dir, "tokens.csv")
	write(t, tokens, token+",admin,admin-uid,system:masters\n")

	etcdPort, peerPort := servertest.FreePort(t), servertest.FreePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	c.run(t, "etcd", etcd,
		"--name", "mlpanel-test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-advertise-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-cluster", "mlpanel-test=http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--unsafe-no-fsync")
	c.waitHTTP(t, "etcd", etcdURL+"/health", nil, time.Minute)

	apiPort := servertest.FreePort(t)
	c.run(t, "kube-apiserver", filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers", etcdURL,
		"--bind-address", "0.0.0.0",
		"--secure-port", strconv.Itoa(apiPort),
		"--advertise-address", ip, // loopback is refused
		"--cert-dir", filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file", pki.serverCert, "--tls-private-key-file", pki.serverKey,
		"--client-ca-file", pki.caCert,
		"--token-auth-file", tokens,
		"--service-account-key-file", pki.saKey,
		"--service-account-signing-key-file", pki.saKey,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-cluster-ip-range", "10.0.0.0/24",
		"--authorization-mode", "RBAC",
		"--enable-priority-and-fairness=false",
		"--profiling=false")
	c.Admin = &rest.Config{
		Host:            "https://127.0.0.1:" + strconv.Itoa(apiPort),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: pki.caCert},
		QPS:             100, Burst: 200,
	}
	hc, err := rest.HTTPClientFor(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	c.waitHTTP(t, "kube-apiserver", c.Admin.Host+"/readyz", hc, 3*time.Minute)
	if c.Client, err = kubernetes.NewForConfig(c.Admin); err != nil {
		t.Fatal(err)
	}

	admin := c.WriteKubeconfig(t, c.Admin, "default")
	c.run(t, "kube-controller-manager", filepath.Join(bin, "kube-controller-manager"),
		"--kubeconfig", admin, "--leader-elect=false",
		// Tokens come from the TokenRequest API; the legacy secret-based
		// token controller would need the CA and signing key.
		"--controllers", "*,-serviceaccount-token",
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(servertest.FreePort(t)),
		"--profiling=false")
	c.run(t, "kube-scheduler", filepath.Join(bin, "kube-scheduler"),
		"--kubeconfig", admin, "--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(servertest.FreePort(t)),
		"--profiling=false")
	c.run(t, "kwok", filepath.Join(bin, "kwok"),
		"--kubeconfig", admin,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
		"--node-ip", ip,
		"--server-address", "127.0.0.1:"+strconv.Itoa(servertest.FreePort(t)))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 2 {
		name := fmt.Sprintf("kwok-node-%d", i)
		if err := c.addNode(ctx, name); err != nil {
			t.Fatalf("adding fake node %s: %v", name, err)
		}
		c.Nodes = append(c.Nodes, name)
	}
	if err := c.addVolumes(ctx, 40); err != nil {
		t.Fatalf("adding volumes: %v", err)
	}
	c.Namespace = "mlpanel-test"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.Namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", c.Namespace, err)
	}
	// Pods need the namespace's default service account, which a
	// controller makes a moment after the namespace.
	c.waitFor(t, ctx, "the default service account of "+c.Namespace, func() bool {
		_, err := c.Client.CoreV1().ServiceAccounts(c.Namespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	return c
}

// addVolumes makes n PersistentVolumes for claims to bind to: the cluster
// has no provisioner, and a pod whose claim is unbound is never scheduled.
// Nothing writes to them (no process runs in kwok's pods).
func (c *Cluster) addVolumes(ctx context.Context, n int) error {
	for i := range n {
		_, err := c.Client.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("kwok-volume-%d", i)},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: mustQuantity("100Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: filepath.Join(c.dir, "volumes", strconv.Itoa(i))}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
	}
	return nil
}

// addNode makes a fake node kwok keeps Ready.
func (c *Cluster) addNode(ctx context.Context, name string) error {
	res := corev1.ResourceList{}
	for k, v := range map[corev1.ResourceName]string{"cpu": "32", "memory": "256Gi", "pods": "110"} {
		res[k] = mustQuantity(v)
	}
	_, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels:      map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/role": "agent", "type": "kwok"}},
		Status: corev1.NodeStatus{Allocatable: res, Capacity: res},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kwok did not make node %s Ready in a minute; kwok's log:\n%s", name, tail(c.logs["kwok"]))
}

// run starts a component in its own process group, logging to a file,
// and stops it (the group) when the test ends.
func (c *Cluster) run(t testing.TB, name, path string, args ...string) {
	t.Helper()
	logPath := filepath.Join(c.dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A proxy from the environment would catch the calls to the API
	// server's machine address.
	cmd.Env = append(os.Environ(), "NO_PROXY=*", "no_proxy=*")
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	c.logs[name] = logPath
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(3 * time.Second): // its data goes with the test: no need for a graceful end
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("%s's log (last lines):\n%s", name, tail(logPath))
		}
	})
}

func (c *Cluster) waitHTTP(t testing.TB, name, url string, hc *http.Client, within time.Duration) {
	t.Helper()
	if hc == nil {
		hc = &http.Client{}
	}
	hc.Timeout = 2 * time.Second
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if c.Admin != nil && strings.HasPrefix(url, c.Admin.Host) {
		req.Header.Set("Authorization", "Bearer "+c.Admin.BearerToken)
	}
	deadline := time.Now().Add(within)
	for {
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %s within %s (last: %v); its log:\n%s", name, url, within, err, tail(c.logs[name]))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Cluster) waitFor(t testing.TB, ctx context.Context, what string, ok func() bool) {
	t.Helper()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Eventually waits up to two minutes for ok, the time kwok may take to
// mark a pod Ready, and fails the test naming what did not happen.
func Eventually(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 2m: %s", what)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// Log is the log of a component ("kube-apiserver", "kwok", ...), for a
// failing test to show.
func (c *Cluster) Log(component string) string { return tail(c.logs[component]) }

// WriteKubeconfig writes a kubeconfig file for rc with namespace ns as
// its context's namespace, and returns its path.
func (c *Cluster) WriteKubeconfig(t testing.TB, rc *rest.Config, ns string) string {
	t.Helper()
	path := filepath.Join(c.dir, "kubeconfig-"+randomHex(t)[:8])
	write(t, path, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: user
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: user, namespace: %s}
current-context: test
`, rc.Host, rc.CAFile, rc.BearerToken, ns))
	return path
}

func hostIP(t testing.TB) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Fatal("kube-apiserver needs a non-loopback IPv4 address to advertise; this machine has none")
	return ""
}

func randomHex(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
