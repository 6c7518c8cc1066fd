package events

import "testing"

func TestRegistrySubjects(t *testing.T) {
	if got := ModelSubject("3", "iris.v2 big", ModelAliasSet); got != "mlpanel.events.model.3.iris_v2_big.alias_set" {
		t.Errorf("model subject %q", got)
	}
	if got := RunSubject("3", "abc", RunFinished); got != "mlpanel.events.run.3.abc.finished" {
		t.Errorf("run subject %q", got)
	}
	a, _ := NewModelEvent("s", ModelData{ProjectID: "3", Name: "m", Alias: "champion", Version: "2"}, ModelAliasSet, "champion", "2", "1", "7")
	b, _ := NewModelEvent("s", ModelData{ProjectID: "3", Name: "m", Alias: "champion", Version: "2"}, ModelAliasSet, "champion", "2", "1", "7")
	c, _ := NewModelEvent("s", ModelData{ProjectID: "3", Name: "m", Alias: "champion", Version: "2"}, ModelAliasSet, "champion", "2", "1", "9")
	if a.ID != b.ID || a.ID == c.ID {
		t.Errorf("ids: same write %s/%s, later write %s", a.ID, b.ID, c.ID)
	}
	if a.Type != "io.mlpanel.model.alias_set" || a.NATSSubject() != "mlpanel.events.model.3.m.alias_set" {
		t.Errorf("type %s subject %s", a.Type, a.NATSSubject())
	}
	r, _ := NewModelEvent("s", ModelData{ProjectID: "3", Name: "new", PreviousName: "old"}, ModelRenamed)
	if r.NATSSubject() != "mlpanel.events.model.3.old.renamed" {
		t.Errorf("a rename is published under the old name, got %s", r.NATSSubject())
	}
}
