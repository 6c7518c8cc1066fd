package adapters

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/nomadrt"
	"github.com/mlpanel/mlpanel/pkg/platform/nomadtest"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// On a volume the project's server keeps its database and artifacts in
// it: at the volume's folder on its node with raw_exec, at the mount
// point in the container with docker; the job claims the volume made on
// the first start and found again on the next. A project that ran
// before and whose volume is gone is not started on an empty new one.
func TestNomadJobOfAProjectOnAVolume(t *testing.T) {
	c := nomadtest.Start(t, 1)
	ctx := context.Background()
	for _, driver := range []string{nomadrt.RawExec, nomadrt.Docker} {
		rt, err := nomadrt.New(nomadrt.Config{Addr: c.Addr, Driver: driver, Image: "mlflow:test", Datacenters: []string{c.Datacenter}, Volume: nomadrt.VolumeHost})
		if err != nil {
			t.Fatal(err)
		}
		n := &Nomad{RT: rt, Server: &MLflowServers{Mlflow: "/venv/bin/mlflow", Workers: 1}}
		p := domain.Project{ID: "7" + driver, Name: "on-a-volume", Path: t.TempDir()}
		sp, err := n.Spec(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		v, ok, err := rt.FindVolume(ctx, JobName(p))
		if err != nil || !ok {
			t.Fatalf("%s: the first start made no volume %s: %v", driver, JobName(p), err)
		}
		dir := nomadrt.DataDir
		if driver == nomadrt.RawExec {
			dir = v.HostPath
		}
		if sp.Volume != JobName(p) ||
			!slices.Contains(sp.Args, "sqlite:///"+dir+"/mlflow.db") || !slices.Contains(sp.Args, dir+"/artifacts") {
			t.Fatalf("%s: job of the project: volume %q, args %v; want volume %s, store and artifacts under %s", driver, sp.Volume, sp.Args, JobName(p), dir)
		}
		if strings.Contains(strings.Join(sp.Args, " "), p.Path) {
			t.Fatalf("%s: the server on a volume still uses the panel's folder %s: %v", driver, p.Path, sp.Args)
		}
		// The next start finds the same volume.
		p.RanBefore = true
		if again, err := n.Spec(ctx, p); err != nil || !slices.Equal(again.Args, sp.Args) {
			t.Fatalf("%s: second start: %v %v, want the same job as the first", driver, again.Args, err)
		}
		// Deleting the project deletes the volume; a project that ran
		// before is then not started empty.
		if err := n.Purge(ctx, p); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := rt.FindVolume(ctx, JobName(p)); ok {
			t.Fatalf("%s: the purged project's volume is still there", driver)
		}
		_, err = n.Spec(ctx, p)
		if err == nil || !reconcile.IsTerminal(err) || !strings.Contains(err.Error(), "is gone") {
			t.Fatalf("%s: a project that ran before, with its volume gone: %v, want a terminal error saying so", driver, err)
		}
	}
}
