package mysqlurl

import (
	"strings"
	"testing"
)

func TestAddressesAgreeOnServerAndAccount(t *testing.T) {
	const s = "mysql://ml:p%40ss@db.example:3307/"
	dsn, err := DSN(s, "mlpanel_project_1_ab")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dsn, "ml:p@ss@tcp(db.example:3307)/mlpanel_project_1_ab?") || !strings.Contains(dsn, "charset=utf8mb4") {
		t.Fatalf("DSN = %s", dsn)
	}
	uri, err := SQLAlchemyURL(s, "mlpanel_project_1_ab")
	if err != nil {
		t.Fatal(err)
	}
	if uri != "mysql+pymysql://ml:p%40ss@db.example:3307/mlpanel_project_1_ab?charset=utf8mb4" {
		t.Fatalf("SQLAlchemy URL = %s", uri)
	}
	uri, err = SQLAlchemyURL("mysql://root@/?unix_socket=/run/mysqld/mysqld.sock", "d")
	if err != nil || uri != "mysql+pymysql://root:@localhost/d?charset=utf8mb4&unix_socket=%2Frun%2Fmysqld%2Fmysqld.sock" {
		t.Fatalf("socket URL = %s, %v", uri, err)
	}
	if dsn, _ := DSN("mysql://root@db/", ""); !strings.HasPrefix(dsn, "root@tcp(db:3306)/?") {
		t.Fatalf("default port: %s", dsn)
	}
}

func TestBadSettingsSayTheForm(t *testing.T) {
	for _, s := range []string{"postgresql://u@h/", "mysql://h:3306/", "mysql://u@h/mlflow", "mysql://u@h/?ssl=1", "mysql://u@/"} {
		err := Check(s)
		if err == nil || !strings.Contains(err.Error(), "mysql://user:password@host:3306/") {
			t.Errorf("Check(%q) = %v, want the form in the message", s, err)
		}
	}
}
