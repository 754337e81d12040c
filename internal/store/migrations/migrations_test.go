package migrations

import (
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

// TestDialectsInStep checks that every migration exists for both dialects
// under the same file name: one logical schema version sequence.
func TestDialectsInStep(t *testing.T) {
	names := map[Dialect][]string{}
	for _, d := range []Dialect{SQLite, Postgres} {
		fsys, err := FS(d)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := fs.ReadDir(fsys, ".")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			names[d] = append(names[d], e.Name())
			b, _ := fs.ReadFile(fsys, e.Name())
			if !strings.Contains(string(b), "-- +goose Up") || !strings.Contains(string(b), "-- +goose Down") {
				t.Errorf("%s/%s lacks goose Up/Down annotations", d, e.Name())
			}
		}
	}
	if len(names[SQLite]) == 0 || !reflect.DeepEqual(names[SQLite], names[Postgres]) {
		t.Fatalf("migration files differ between dialects: sqlite %v, postgres %v", names[SQLite], names[Postgres])
	}
	if _, err := FS("mysql"); err == nil {
		t.Error("unknown dialect accepted")
	}
}
