package adapters_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/nomadrt"
	"github.com/mlpanel/mlpanel/services/projects/adapters"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// The job of a project on Nomad: the database address (with its
// password) only in the secret, never in the env read-job shows; the
// artifacts at MLPANEL_NOMAD_ARTIFACTS_DESTINATION/<id> for a project on
// a database server, in the project's folder otherwise.
func TestNomadProjectJob(t *testing.T) {
	rt, err := nomadrt.New(nomadrt.Config{Addr: "http://127.0.0.1:1", Driver: nomadrt.RawExec})
	if err != nil {
		t.Fatal(err)
	}
	servers := adapters.NewMLflowServers("/venv/bin/mlflow", "127.0.0.1", 1, false)
	servers.ProjectDBURL = "postgresql://mlpanel:hunter2@db:5432/postgres"
	n := &adapters.Nomad{RT: rt, Server: servers, Artifacts: "s3://bucket/mlpanel/"}
	dir := t.TempDir()

	pg := domain.Project{ID: "7", Name: "churn", Backend: domain.BackendPostgreSQL, Database: "mlpanel_7", Path: dir + "/churn"}
	s, err := n.Spec(t.Context(), pg)
	if err != nil {
		t.Fatal(err)
	}
	if uri := s.Secret["MLFLOW_BACKEND_STORE_URI"]; !strings.Contains(uri, "hunter2") || !strings.Contains(uri, "mlpanel_7") {
		t.Errorf("secret MLFLOW_BACKEND_STORE_URI=%q, want the project's database on the server", uri)
	}
	for k, v := range s.Env {
		if strings.Contains(v, "hunter2") {
			t.Errorf("the job's env %s holds the password", k)
		}
	}
	if strings.Contains(strings.Join(s.Args, " "), "hunter2") {
		t.Errorf("the job's args hold the password: %v", s.Args)
	}
	if got := argAfter(s.Args, "--artifacts-destination"); got != "s3://bucket/mlpanel/7" {
		t.Errorf("artifacts of a PostgreSQL project: %q, want s3://bucket/mlpanel/7", got)
	}

	// SQLite keeps its artifacts beside its database, whatever the setting.
	lite := domain.Project{ID: "8", Name: "lite", Backend: domain.BackendSQLite, Path: dir + "/lite"}
	s, err = n.Spec(t.Context(), lite)
	if err != nil {
		t.Fatal(err)
	}
	if got := argAfter(s.Args, "--artifacts-destination"); got != lite.Path+"/artifacts" {
		t.Errorf("artifacts of a SQLite project: %q, want its folder", got)
	}
	if len(s.Secret) != 0 {
		t.Errorf("a SQLite project's job has a secret: %v", s.Secret)
	}

	// Unset: the project's folder, as before.
	n.Artifacts = ""
	s, err = n.Spec(t.Context(), pg)
	if err != nil {
		t.Fatal(err)
	}
	if got := argAfter(s.Args, "--artifacts-destination"); got != pg.Path+"/artifacts" {
		t.Errorf("artifacts without the setting: %q, want the project's folder", got)
	}
}

func argAfter(args []string, flag string) string {
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		return ""
	}
	return args[i+1]
}

// A relative artifacts destination would land wherever the server starts
// on its node: both cluster runtimes refuse it, naming their setting.
func TestArtifactsDestinationMustBeShared(t *testing.T) {
	_, err := adapters.NewKube(adapters.KubeConfig{VolumeSize: "1Gi", ArtifactsDestination: "artifacts"}, 1, false, "", "")
	if err == nil || !strings.Contains(err.Error(), "MLPANEL_KUBE_ARTIFACTS_DESTINATION") {
		t.Errorf("kube with a relative destination: %v, want an error naming MLPANEL_KUBE_ARTIFACTS_DESTINATION", err)
	}
	for _, ok := range []string{"", "/srv/artifacts", "s3://bucket/mlpanel", "gs://b", "file:///srv/a"} {
		if err := adapters.CheckArtifactsDestination("X", ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"artifacts", "./a", "c:a"} {
		if err := adapters.CheckArtifactsDestination("X", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
