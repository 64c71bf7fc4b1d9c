// Command vcsim serves a govmomi simulator model (a fake vCenter or ESXi)
// on 127.0.0.1 so Ferry's vSphere inventory can be tested against a real
// SOAP endpoint. Debian ships govmomi's simulator package but not the vcsim
// program, so this is the project's own small main.
//
// Build offline:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off go build -o vcsim .
//
// On success it prints one line, "READY <url>", on stdout (the URL carries no
// credentials) and serves until SIGTERM or SIGINT, then removes the model's
// temporary datastore folders.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	mode := flag.String("mode", "vpx", "model: vpx (vCenter) or esx (standalone ESXi)")
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on (port 0 picks a free one)")
	useTLS := flag.Bool("tls", true, "serve https with a self-signed certificate (false: plain http)")
	user := flag.String("username", "user", "login user")
	passEnv := flag.String("password-env", "VCSIM_PASSWORD", "environment variable holding the login password (default password: pass)")
	dc := flag.Int("dc", 1, "datacenters (vpx)")
	cluster := flag.Int("cluster", 1, "clusters per datacenter (vpx)")
	clusterHost := flag.Int("host", 3, "hosts per cluster (vpx)")
	standalone := flag.Int("standalone-host", 1, "standalone hosts per datacenter (vpx)")
	vm := flag.Int("vm", 2, "VMs per resource pool (each host and each cluster has one)")
	ds := flag.Int("ds", 1, "datastores")
	folder := flag.Int("folder", 0, "datacenters placed within a folder")
	delay := flag.Int("delay", 0, "milliseconds to delay every SOAP call (to test client timeouts)")
	methodDelay := flag.String("method-delay", "", "per-method delays, e.g. RetrievePropertiesEx=2000,Logout=100")
	powerOff := flag.String("poweroff", "", "comma-separated VM names to leave powered off")
	flag.Parse()

	// Catch the stop signal before creating anything, so a stop that arrives
	// while the model is being built still removes its temporary folders.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)

	var model *simulator.Model
	switch *mode {
	case "vpx":
		model = simulator.VPX()
		model.Datacenter = *dc
		model.Cluster = *cluster
		model.ClusterHost = *clusterHost
		model.Host = *standalone
		model.Folder = *folder
	case "esx":
		model = simulator.ESX()
	default:
		fmt.Fprintf(os.Stderr, "vcsim: unknown -mode %q (vpx or esx)\n", *mode)
		os.Exit(2)
	}
	model.Machine = *vm
	model.Datastore = *ds
	model.DelayConfig.Delay = *delay
	if *methodDelay != "" {
		delays, err := parseMethodDelays(*methodDelay)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vcsim: -method-delay: %v\n", err)
			os.Exit(2)
		}
		model.DelayConfig.MethodDelay = delays
	}

	if err := model.Create(); err != nil {
		fmt.Fprintf(os.Stderr, "vcsim: create model: %v\n", err)
		os.Exit(1)
	}
	defer model.Remove()

	if *powerOff != "" {
		if err := powerOffByName(strings.Split(*powerOff, ",")); err != nil {
			fmt.Fprintf(os.Stderr, "vcsim: %v\n", err)
			model.Remove()
			os.Exit(2)
		}
	}

	password := "pass"
	if v, ok := os.LookupEnv(*passEnv); ok {
		password = v
	}
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, password)}
	if *useTLS {
		model.Service.TLS = new(tls.Config)
	}
	model.Service.RegisterEndpoints = true

	server := model.Service.NewServer()
	defer server.Close()

	// Print the URL without credentials: the test harness logs this line.
	ready := *server.URL
	ready.User = nil
	fmt.Printf("READY %s\n", ready.String())
	os.Stdout.Sync()
	<-stop
}

// powerOffByName flips the power state of the named VMs before serving; the
// models power every VM on, and tests need both states.
func powerOffByName(names []string) error {
	want := map[string]bool{}
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm, ok := e.(*simulator.VirtualMachine)
		if !ok || !want[vm.Name] {
			continue
		}
		vm.Runtime.PowerState = types.VirtualMachinePowerStatePoweredOff
		vm.Summary.Runtime.PowerState = types.VirtualMachinePowerStatePoweredOff
		delete(want, vm.Name)
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for n := range want {
			missing = append(missing, n)
		}
		return fmt.Errorf("-poweroff: no such VM: %s", strings.Join(missing, ", "))
	}
	return nil
}

// parseMethodDelays reads "Method=ms,Method=ms" into the simulator's map.
func parseMethodDelays(spec string) (map[string]int, error) {
	delays := map[string]int{}
	for _, item := range strings.Split(spec, ",") {
		name, ms, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%q is not Method=milliseconds", item)
		}
		n, err := strconv.Atoi(ms)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q: bad milliseconds", item)
		}
		delays[name] = n
	}
	return delays, nil
}
