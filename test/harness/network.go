package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Network is the test cluster's network as kube-apiserver sees it. The API
// server's "cluster" egress (what the aggregator, the service and pod
// proxies and Service-backed webhooks dial) goes through an HTTP CONNECT
// tunnel on a Unix socket, the way konnectivity carries it in k0s, and the tunnel
// decides where each destination leads:
//   - localhost and loopback addresses lead to themselves (adapters behind
//     ExternalName Services);
//   - a destination given a Route (a pod IP or a ClusterIP and port) leads
//     to the loopback address it names; one given Balance (a ClusterIP and
//     port with several ready endpoints) to one of its addresses in turn,
//     as kube-proxy spreads a Service's connections;
//   - a destination given Drop takes the connection and never answers, as
//     a NetworkPolicy or a firewall that drops packets does;
//   - any other destination gets "no route to host" and is never dialed.
//
// So pods, EndpointSlices and ClusterIP Services created by a test are
// reachable from the real API server, and no test traffic leaves loopback.
type Network struct {
	ln     net.Listener
	sock   string
	mu     sync.Mutex
	routes map[string]route
	// open holds the tunnels carrying connections, by destination.
	open map[string]map[net.Conn]struct{}
	wg   sync.WaitGroup
	done chan struct{}
}

type route struct {
	to   []string // loopback host:port, taken in turn; none with drop
	drop bool
	next *atomic.Uint64
}

// maxSocketPath is what a Unix socket's path may hold (sun_path, less its
// terminating NUL).
const maxSocketPath = 107

// startNetwork starts the tunnel on a Unix socket in dir and writes the
// API server's egress selector configuration there.
func startNetwork(dir string) (*Network, string, error) {
	// A Unix socket: the API server speaks HTTP CONNECT over TCP only with
	// TLS, over a socket without.
	sock := filepath.Join(dir, "cluster-network.sock")
	if len(sock) > maxSocketPath {
		return nil, "", fmt.Errorf("socket path %s is longer than %d bytes: use a shorter directory", sock, maxSocketPath)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, "", err
	}
	n := &Network{ln: ln, sock: sock, routes: map[string]route{}, open: map[string]map[net.Conn]struct{}{}, done: make(chan struct{})}
	config := filepath.Join(dir, "egress-selector.yaml")
	text := fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`, sock)
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		_ = ln.Close()
		return nil, "", err
	}
	n.wg.Add(1)
	go n.serve()
	return n, config, nil
}

// Socket is the tunnel's Unix socket: the guard dials backends through it
// (--backend-dial unix://SOCKET) as the API server does.
func (n *Network) Socket() string { return n.sock }

// Route sends connections to dest ("10.244.1.7:6443") to the loopback
// address to ("127.0.0.1:41234").
func (n *Network) Route(dest, to string) error {
	if !loopback(to) {
		return fmt.Errorf("route %s -> %s: the test network only leads to loopback", dest, to)
	}
	return n.Balance(dest, to)
}

// Balance sends connections to dest to each of the loopback addresses to
// in turn, as kube-proxy sends a Service's connections to its ready
// endpoints; with none, a connection is refused, as to a Service without
// endpoints. Call it again as the endpoints change.
func (n *Network) Balance(dest string, to ...string) error {
	for _, t := range to {
		if !loopback(t) {
			return fmt.Errorf("route %s -> %s: the test network only leads to loopback", dest, t)
		}
	}
	n.set(dest, route{to: slices.Clone(to), next: &atomic.Uint64{}})
	return nil
}

// Drop makes connections to dest hang without an answer until the dialer
// gives up.
func (n *Network) Drop(dest string) { n.set(dest, route{drop: true}) }

// Unroute removes what Route or Drop set for dest: it has no route again.
func (n *Network) Unroute(dest string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.routes, dest)
}

func (n *Network) set(dest string, r route) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.routes[dest] = r
}

// Reset closes the connections to dest that the tunnel carries now, as a
// backend going away resets them: the next ones follow dest's route as it
// is now. (Balance alone leaves kept-alive connections where they lead.)
func (n *Network) Reset(dest string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for conn := range n.open[dest] {
		_ = conn.Close()
	}
}

// track records conn as a connection to dest until the returned function
// is called.
func (n *Network) track(dest string, conn net.Conn) (untrack func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.open[dest] == nil {
		n.open[dest] = map[net.Conn]struct{}{}
	}
	n.open[dest][conn] = struct{}{}
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.open[dest], conn)
	}
}

// Close stops the tunnel and the connections it carries.
func (n *Network) Close() {
	close(n.done)
	_ = n.ln.Close()
	n.wg.Wait()
}

func (n *Network) serve() {
	defer n.wg.Done()
	for {
		conn, err := n.ln.Accept()
		if err != nil {
			return
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.tunnel(conn)
		}()
	}
}

// tunnel answers one CONNECT.
func (n *Network) tunnel(conn net.Conn) {
	defer func() { _ = conn.Close() }()
	defer closeOnDone(n.done, conn)()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	dest := req.Host
	if req.Method != http.MethodConnect {
		_, _ = fmt.Fprintf(conn, "HTTP/1.1 405 only CONNECT\r\n\r\n")
		return
	}
	n.mu.Lock()
	r, ok := n.routes[dest]
	n.mu.Unlock()
	switch {
	case r.drop:
		_, _ = io.Copy(io.Discard, br) // until the API server gives up
		return
	case ok && len(r.to) == 0:
		_, _ = fmt.Fprintf(conn, "HTTP/1.1 502 dial tcp %s: connect: connection refused\r\n\r\n", dest)
		return
	case ok:
	case loopback(dest):
		r.to = []string{dest}
	default:
		_, _ = fmt.Fprintf(conn, "HTTP/1.1 502 dial tcp %s: connect: no route to host\r\n\r\n", dest)
		return
	}
	to := r.to[0]
	if r.next != nil {
		to = r.to[int(r.next.Add(1)-1)%len(r.to)]
	}
	backend, err := net.DialTimeout("tcp", to, 2*time.Second)
	if err != nil {
		// As a dial from a node would fail: refused, most often.
		_, _ = fmt.Fprintf(conn, "HTTP/1.1 502 dial tcp %s: %s\r\n\r\n", dest, dialReason(err))
		return
	}
	defer func() { _ = backend.Close() }()
	defer closeOnDone(n.done, backend)()
	defer n.track(dest, conn)()
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(backend, br); closeWrite(backend); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, backend); closeWrite(conn); done <- struct{}{} }()
	<-done
	<-done
}

// closeOnDone closes conn when the network closes, so Close does not wait
// for tunnels held open by their peers.
func closeOnDone(done <-chan struct{}, conn net.Conn) (stop func()) {
	finished := make(chan struct{})
	go func() {
		select {
		case <-done:
			_ = conn.Close()
		case <-finished:
		}
	}()
	return func() { close(finished) }
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// dialReason is the end of a dial error: "connect: connection refused".
func dialReason(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// loopback reports whether hostport names localhost or a loopback address.
func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
