// chart-render renders a Helm chart the way `helm template` does, for the
// deployment tests on machines where no helm binary can be installed: Go's
// text/template with the Sprig functions (the two libraries Helm's engine is
// built on) plus Helm's own include, toYaml, required and tpl. It prints the
// rendered objects as one JSON array, or the error.
//
//	chart-render <chart dir> <release name> [key=value ...]
//
// key=value sets a value by its dotted path (strings; "true"/"false" and
// integers are typed).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

func readYaml(path string) map[string]interface{} {
	out := map[string]interface{}{}
	b, err := os.ReadFile(path)
	if err != nil {
		fail(err)
	}
	if err := yaml.Unmarshal(b, &out); err != nil {
		fail(fmt.Errorf("%s: %w", path, err))
	}
	return out
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func set(values map[string]interface{}, path string, raw string) {
	var v interface{} = raw
	if raw == "true" || raw == "false" {
		v = raw == "true"
	} else if n, err := strconv.Atoi(raw); err == nil {
		v = n
	}
	keys := strings.Split(path, ".")
	m := values
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
}

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: chart-render <chart dir> <release> [key=value ...]"))
	}
	dir, release := os.Args[1], os.Args[2]
	chart := readYaml(filepath.Join(dir, "Chart.yaml"))
	values := readYaml(filepath.Join(dir, "values.yaml"))
	for _, kv := range os.Args[3:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			fail(fmt.Errorf("%q is not key=value", kv))
		}
		set(values, k, v)
	}
	top := map[string]interface{}{
		"Values":  values,
		"Release": map[string]interface{}{"Name": release, "Namespace": "default", "Service": "Helm"},
		"Chart": map[string]interface{}{
			"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"],
		},
	}
	root := template.New("chart")
	funcs := sprig.TxtFuncMap()
	funcs["toYaml"] = func(v interface{}) string {
		b, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(b), "\n")
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, fmt.Errorf("%s", msg)
		}
		return v, nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	root.Funcs(funcs).Option("missingkey=zero")
	files, _ := filepath.Glob(filepath.Join(dir, "templates", "*"))
	sort.Strings(files)
	var manifests []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			fail(err)
		}
		name := filepath.Base(f)
		if _, err := root.New(name).Parse(string(b)); err != nil {
			fail(err)
		}
		if !strings.HasPrefix(name, "_") && strings.HasSuffix(name, ".yaml") {
			manifests = append(manifests, name)
		}
	}
	var objects []interface{}
	for _, name := range manifests {
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, top); err != nil {
			fail(err)
		}
		for _, doc := range strings.Split(buf.String(), "\n---") {
			var obj map[string]interface{}
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				fail(fmt.Errorf("%s renders invalid YAML: %w\n%s", name, err, doc))
			}
			if len(obj) > 0 {
				objects = append(objects, obj)
			}
		}
	}
	out, err := json.MarshalIndent(objects, "", " ")
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}
