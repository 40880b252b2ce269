// Package kubernetes holds the Kubernetes manifests of a flow in group mode
// (see README.md) and the test that keeps them in step with the flags.
package kubernetes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/runnel-dev/runnel/internal/api"
	"github.com/runnel-dev/runnel/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The parts of the manifests the test reads; yaml ignores the rest.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int        `yaml:"terminationGracePeriodSeconds"`
	Containers                    []container `yaml:"containers"`
	Volumes                       []any       `yaml:"volumes"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Args    []string `yaml:"args"`
	Command []string `yaml:"command"`
	Env     []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	VolumeMounts   []any  `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // a number or a port name
	} `yaml:"httpGet"`
}

// load parses every YAML document of every manifest in this directory.
func load(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var objs []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "" {
				t.Fatalf("%s: a document without kind", f)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

func one(t *testing.T, objs []object, kind string) object {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s, want 1", len(found), kind)
	}
	return found[0]
}

// TestManifestMatchesFlags checks the Deployment and the ConfigMap against
// what a flow binary reads: every RUNNEL_ variable they set is one of the
// flags' variables, together they are a valid group-mode configuration
// (parsed by the same code as a member's), and the pod gives SIGTERM time
// to commit the open epoch and probes an endpoint the API serves.
func TestManifestMatchesFlags(t *testing.T) {
	objs := load(t)
	cm := one(t, objs, "ConfigMap")
	dep := one(t, objs, "Deployment")
	if cm.APIVersion != "v1" || dep.APIVersion != "apps/v1" {
		t.Errorf("apiVersion: ConfigMap %q, Deployment %q", cm.APIVersion, dep.APIVersion)
	}

	known := config.EnvVars()
	env := map[string]string{}
	for k, v := range cm.Data {
		if !slices.Contains(known, k) {
			t.Errorf("ConfigMap %s sets %s, which no flag reads (Runnel reads %s)", cm.Metadata.Name, k, strings.Join(known, ", "))
		}
		env[k] = v
	}

	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1 (the flow)", len(pod.Containers))
	}
	c := pod.Containers[0]
	usesCM := false
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil && ef.ConfigMapRef.Name == cm.Metadata.Name {
			usesCM = true
		}
	}
	if !usesCM {
		t.Errorf("container %s does not take its environment from ConfigMap %s", c.Name, cm.Metadata.Name)
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "RUNNEL_") && !slices.Contains(known, e.Name) {
			t.Errorf("container %s sets %s, which no flag reads", c.Name, e.Name)
		}
		env[e.Name] = e.Value // env beats envFrom in Kubernetes
	}
	if len(c.Args) > 0 || len(c.Command) > 0 {
		t.Errorf("container %s has args or a command; the manifest configures the flow by environment only", c.Name)
	}

	for _, name := range []string{"RUNNEL_GROUP", "RUNNEL_BROKERS", "RUNNEL_WORKERS_PER_PROCESS",
		"RUNNEL_SNAPSHOT_INTERVAL", "RUNNEL_LOG_LEVEL", "RUNNEL_API_ADDR"} {
		if env[name] == "" {
			t.Errorf("the pod's environment does not set %s", name)
		}
	}
	cfg, rest, err := config.Parse("flow", nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the manifest's environment is not a valid configuration:\n%v", err)
	}
	if len(rest) > 0 || cfg.Group == "" || len(cfg.Brokers) == 0 || cfg.RecoveryDir != "" {
		t.Errorf("not a group-mode configuration: %+v", cfg)
	}
	if len(pod.Volumes) > 0 || len(c.VolumeMounts) > 0 {
		t.Errorf("the pod mounts volumes; a group member keeps its state in Kafka, not on disk")
	}

	// SIGTERM: the member finishes its open epoch and commits it. Leave an
	// epoch plus a commit's worth of margin (10s) before the SIGKILL.
	if g := pod.TerminationGracePeriodSeconds; g == nil {
		t.Error("no terminationGracePeriodSeconds")
	} else if grace := time.Duration(*g) * time.Second; grace < cfg.SnapshotInterval+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v leaves too little time after SIGTERM for an epoch of %v to commit", grace, cfg.SnapshotInterval)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		t.Errorf("replicas %v: a group of one member is a single process", dep.Spec.Replicas)
	}
	for k, v := range dep.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod template's labels %v", k, v, dep.Spec.Template.Metadata.Labels)
		}
	}
	if len(dep.Spec.Selector.MatchLabels) == 0 {
		t.Error("the Deployment has no selector")
	}

	// The probes hit the port of RUNNEL_API_ADDR, on a path the API serves.
	_, apiPort, err := net.SplitHostPort(cfg.APIAddr)
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{}
	for _, p := range c.Ports {
		ports[p.Name] = strconv.Itoa(p.ContainerPort)
	}
	for name, p := range map[string]*probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe on the API", name)
			continue
		}
		port := fmt.Sprint(p.HTTPGet.Port)
		if named, ok := ports[port]; ok {
			port = named
		}
		if port != apiPort {
			t.Errorf("%s probes port %v, but RUNNEL_API_ADDR is %s", name, p.HTTPGet.Port, cfg.APIAddr)
		}
		if code := get(t, p.HTTPGet.Path); code != http.StatusOK {
			t.Errorf("%s: GET %s on the API answers %d, want 200", name, p.HTTPGet.Path, code)
		}
	}
}

// get asks a real API server (the one a flow binary serves on
// RUNNEL_API_ADDR) for path.
func get(t *testing.T, path string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := api.Start(ln, api.Options{})
	defer srv.Close()
	resp, err := http.Get("http://" + ln.Addr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestReadmeNamesEveryVariable: the README explains every variable the
// ConfigMap sets.
func TestReadmeNamesEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for k := range one(t, load(t), "ConfigMap").Data {
		if !strings.Contains(string(readme), k) {
			t.Errorf("README.md does not explain %s", k)
		}
	}
}
