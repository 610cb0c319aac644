//go:build bootbench

package boot

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
)

var (
	flagRuns    = flag.Int("boot.runs", 3, "boots per configuration")
	flagConfigs = flag.String("boot.configs", "full,proxy,glue,full-ra", "configurations, comma-separated (see Configs)")
	flagOut     = flag.String("boot.out", "", "write the report's tables here")
	flagResults = flag.String("boot.results", "", "append every run here as a JSON line")
	flagKeep    = flag.String("boot.keep", "", "copy every run's tcpdump output and serial console into this directory")
	flagBin     = flag.String("boot.stagehand", "", "the stagehand binary (default: built from this tree)")
	flagCPU     = flag.String("boot.qemu-cpu", "", "pin QEMU to this CPU list (run.sh: 0, with the test and its servers on 1)")
)

const (
	httpPort = 8080
	vmMAC    = "52:54:00:b0:07:01"
)

// bench is what every run shares.
type bench struct {
	bin            string // stagehand
	kernel, initrd string // the lab's artifacts
}

// TestBootBench boots the VM boot.runs times in every configuration, the
// configurations interleaved run by run so that a noisy minute on the
// shared machine hits all of them, and writes the report.
func TestBootBench(t *testing.T) {
	b := bench{bin: *flagBin}
	if b.bin == "" {
		b.bin = lab.BuildGo(t, "github.com/stagehand-dev/stagehand/cmd/stagehand")
	}
	b.kernel, b.initrd = lab.Artifacts(t)
	var configs []Config
	for _, name := range strings.Split(*flagConfigs, ",") {
		c, ok := ConfigNamed(strings.TrimSpace(name))
		if !ok {
			t.Fatalf("unknown configuration %q", name)
		}
		configs = append(configs, c)
	}
	var runs []Run
	for n := 1; n <= *flagRuns; n++ {
		for _, c := range configs {
			t.Run(fmt.Sprintf("%s/%d", c.Name, n), func(t *testing.T) {
				run := b.boot(t, c, n)
				runs = append(runs, run)
				logRun(t, run)
				appendResult(t, run)
			})
		}
	}
	var out bytes.Buffer
	Write(&out, runs)
	t.Logf("report:\n%s", out.String())
	if *flagOut != "" {
		if err := os.WriteFile(*flagOut, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// boot sets configuration c up in a fresh namespace, powers the VM on
// with tcpdump watching the bridge, and returns what it measured.
func (b bench) boot(t *testing.T, c Config, n int) Run {
	run := Run{Config: c.Name, N: n}
	net := lab.NewNet(t, "boot-"+c.Name, "10.97.0.1/24")
	base := fmt.Sprintf("http://%s:%d", net.ServerIP, httpPort)
	var sh *stagehand
	switch c.Name {
	case "full", "full-ra":
		sh = b.startStagehand(t, net, "--dhcp-mode", "full", "--dhcp-range", net.Host(100).String()+"-"+net.Host(150).String())
		if c.Name == "full-ra" {
			lab.RunRA(t, net)
		}
	case "proxy":
		site := net.AddPeer(t, "site", net.Host(2).String()+"/24")
		lab.RunDnsmasqSite(t, site, "eth0", net.Host(100).String(), net.Host(150).String())
		sh = b.startStagehand(t, net, "--dhcp-mode", "proxy")
	case "glue":
		site := net.AddPeer(t, "site", net.Host(2).String()+"/24")
		lab.RunDnsmasqSite(t, site, "eth0", net.Host(100).String(), net.Host(150).String(), "--dhcp-boot="+base+"/boot.ipxe", "--dhcp-option-force=60,PXEClient")
		b.startGlue(t, net, base)
	}
	dump := lab.Start(t, net.NS, "tcpdump", TcpdumpArgs(httpPort)...)
	if !dump.WaitOutput("listening on", 10*time.Second) {
		t.Fatalf("tcpdump did not start:\n%s", dump.Output())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	vm := lab.StartVM(t, net, lab.VMOptions{Firmware: lab.BIOS, NICROM: true, MAC: vmMAC, Timeout: 4 * time.Minute})
	powerOn := time.Now()
	go pinQEMU(t, net.NS)
	err := vm.Wait(ctx)
	off := time.Now()
	time.Sleep(500 * time.Millisecond) // the last segments reach tcpdump's file
	dump.Stop()

	keep(t, fmt.Sprintf("%s-%d", c.Name, n), dump.Output(), vm.Log())
	ev, perr := ParseTcpdump(strings.NewReader(dump.Output()), vm.Tap)
	if perr != nil {
		t.Fatalf("reading tcpdump's output: %v", perr)
	}
	run.Marks = MarksOf(ev, vmMAC, powerOn, off)
	run.Problem = problem(err, vm.Log(), run.Marks)
	if sh != nil {
		state, tl := sh.outcome(t)
		run.Timeline = tl
		if state != "installed" && run.Problem == "" {
			run.Problem = "stagehand recorded the host as " + state
		}
	}
	if run.Problem != "" {
		t.Errorf("%s run %d: %s; serial tail:\n%s", c.Name, n, run.Problem, lab.Tail(vm.Log(), 20))
	}
	return run
}

// problem says why a boot does not count, "" when it does.
func problem(vmErr error, serial string, m Marks) string {
	switch {
	case vmErr != nil:
		return "the VM did not power off cleanly: " + vmErr.Error()
	case !strings.Contains(serial, "STANDIN: callback ok"):
		return "the stand-in did not report completion"
	}
	for _, ms := range Milestones {
		if _, ok := m.At[ms.Name]; !ok {
			return "tcpdump did not see " + ms.Name
		}
	}
	return ""
}

// stagehand is a stagehand serve process on the bench's bridge with the
// lab profile and the VM in its inventory, as in examples/demo.sh.
type stagehand struct {
	bin, ns, url, data string
}

func (b bench) startStagehand(t *testing.T, n *lab.Net, args ...string) *stagehand {
	t.Helper()
	s := &stagehand{bin: b.bin, ns: n.NS, url: fmt.Sprintf("http://%s:%d", n.ServerIP, httpPort), data: t.TempDir()}
	p := lab.Start(t, n.NS, b.bin, append([]string{"serve", "--interface", n.Bridge, "--data-dir", s.data,
		"--http-port", strconv.Itoa(httpPort)}, args...)...)
	p.WaitReady(t, "answering its API", 20*time.Second, func() bool {
		_, err := s.cli("status")
		return err == nil
	})
	ud := filepath.Join(t.TempDir(), "base.yaml")
	if err := os.WriteFile(ud, []byte("stylus:\n  site:\n    paletteEndpoint: api.spectrocloud.example\n"+
		"    projectUid: bench-project\n    edgeHostToken: bench-token\ninstall:\n  poweroff: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{
		{"profile", "add", "lab", "--kernel", b.kernel, "--initrd", b.initrd, "--cmdline", "console=ttyS0 panic=-1", "--userdata", ud},
		{"host", "add", vmMAC, "--profile", "lab", "--name", "bench-node-1"},
	} {
		if out, err := s.cli(cmd...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	return s
}

func (s *stagehand) cli(args ...string) (string, error) {
	full := append([]string{"netns", "exec", s.ns, s.bin}, args...)
	out, err := exec.Command("ip", append(full, "--server", s.url, "--data-dir", s.data)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("stagehand %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// outcome returns the host's state and the latest attempt's timeline
// (none from a build without one).
func (s *stagehand) outcome(t *testing.T) (string, []PhaseSeconds) {
	out, err := s.cli("host", "show", vmMAC, "--output", "json")
	if err != nil {
		t.Errorf("%v\n%s", err, out)
		return "unknown", nil
	}
	var h struct {
		State    string `json:"state"`
		Timeline []struct {
			Phases []PhaseSeconds `json:"phases"`
		} `json:"timeline"`
	}
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Errorf("host show: %v\n%s", err, out)
		return "unknown", nil
	}
	if len(h.Timeline) == 0 {
		return h.State, nil
	}
	return h.State, h.Timeline[len(h.Timeline)-1].Phases
}

// startGlue serves what stagehand's stage 2 would, as static files under
// the same paths, from nginx (one worker, sendfile) on the bridge.
func (b bench) startGlue(t *testing.T, n *lab.Net, base string) {
	t.Helper()
	dir := t.TempDir()
	const token = "glue-token"
	files := map[string]string{
		"boot.ipxe": "#!ipxe\n" +
			"kernel " + base + "/artifacts/glue/kernel initrd=initrd.img console=ttyS0 panic=-1 config_url=" + base + "/userdata/" + token + "\n" +
			"initrd --name initrd.img " + base + "/artifacts/glue/initrd\nboot\n",
		"userdata/" + token: "#cloud-config\ninstall:\n  poweroff: true\nstylus:\n  site:\n    paletteEndpoint: api.spectrocloud.example\n" +
			"    name: bench-node-1\nstages:\n  after-install:\n    - name: callback\n      commands:\n" +
			"        - wget -q -O- --post-data= \"" + base + "/callback/" + token + "/done\"\n",
		"nginx.conf": fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	default_type application/octet-stream;
	sendfile on;
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/tmp;
	proxy_temp_path %[1]s/tmp;
	fastcgi_temp_path %[1]s/tmp;
	uwsgi_temp_path %[1]s/tmp;
	scgi_temp_path %[1]s/tmp;
	server {
		listen %[2]s:%[3]d;
		root %[1]s/www;
		location /callback/ { return 200 "ok\n"; }
	}
}
`, dir, n.ServerIP, httpPort),
	}
	for name, body := range files {
		p := filepath.Join(dir, "www", name)
		if name == "nginx.conf" {
			p = filepath.Join(dir, name)
		}
		mustWrite(t, p, body)
	}
	if err := os.MkdirAll(filepath.Join(dir, "www/artifacts/glue"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"kernel": b.kernel, "initrd": b.initrd} {
		if err := os.Symlink(src, filepath.Join(dir, "www/artifacts/glue", name)); err != nil {
			t.Fatal(err)
		}
	}
	p := lab.Start(t, n.NS, "nginx", "-c", filepath.Join(dir, "nginx.conf"), "-p", dir, "-e", filepath.Join(dir, "error.log"))
	p.WaitReady(t, "serving "+base, 10*time.Second, func() bool {
		return exec.Command("ip", "netns", "exec", n.NS, "curl", "-sf", "-o", "/dev/null", base+"/boot.ipxe").Run() == nil
	})
}

func mustWrite(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pinQEMU moves QEMU (every thread) and its timeout wrapper, the only
// processes of the VM's namespace started by StartVM, to boot.qemu-cpu;
// run.sh starts the test, and so every server, on the other CPU. Done
// twice: a thread QEMU creates while taskset walks its threads would keep
// the old CPU.
func pinQEMU(t *testing.T, ns string) {
	t.Helper()
	if *flagCPU == "" {
		return
	}
	for i := 0; i < 2; i++ {
		pids, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, pid := range strings.Fields(string(pids)) {
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			if c := strings.TrimSpace(string(comm)); c != "timeout" && !strings.HasPrefix(c, "qemu-system") {
				continue
			}
			if out, err := exec.Command("taskset", "-a", "-p", "-c", *flagCPU, pid).CombinedOutput(); err != nil {
				t.Logf("taskset %s: %v: %s", pid, err, out)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// keep saves a run's capture and serial console under boot.keep.
func keep(t *testing.T, name, capture, serial string) {
	if *flagKeep == "" {
		return
	}
	mustWrite(t, filepath.Join(*flagKeep, name+".tcpdump"), capture)
	mustWrite(t, filepath.Join(*flagKeep, name+".serial"), serial)
}

func logRun(t *testing.T, r Run) {
	var b strings.Builder
	for _, m := range Milestones {
		if x, ok := r.At[m.Name]; ok {
			fmt.Fprintf(&b, " %s %.2f", m.Name, x)
		}
	}
	t.Logf("%s run %d:%s (s after power-on; %d RS, %d RA before the first HTTP request)", r.Config, r.N, b.String(), r.RS, r.RA)
	if len(r.Timeline) > 0 {
		b.Reset()
		for _, p := range r.Timeline {
			fmt.Fprintf(&b, " %s %.2f", p.Phase, p.Seconds)
		}
		t.Logf("%s run %d: stagehand's timeline:%s", r.Config, r.N, b.String())
	}
}

func appendResult(t *testing.T, r Run) {
	if *flagResults == "" {
		return
	}
	line, _ := json.Marshal(r)
	f, err := os.OpenFile(*flagResults, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(append(line, '\n'))
}
