//! A fault-injecting TCP proxy for tests: put it between a client and a server (a Kafka broker, PostgreSQL,
//! an S3 server) and cut, stall or refuse the connections on demand.
//!
//! [`Proxy::start`] listens on a free `127.0.0.1` port and forwards every connection it accepts to an upstream
//! address, bytes both ways, unchanged and in order. Plain threads, no async runtime: two per open connection
//! and one accepting. The controls act at once on every connection:
//!
//! - [`Proxy::cut`] closes every open connection now (both sides see the close); new ones are still accepted,
//!   so a client that reconnects gets through. This is a broker restart or a network flap, seen from a client.
//! - [`Proxy::stall`] stops forwarding in both directions without closing anything: bytes already sent wait
//!   in the proxy (and, once its buffer is full, in the kernel) until the stall ends, then flow again in
//!   order. Clients see a silent network and run into their own timeouts.
//!   [`Proxy::stall_upstream`] and [`Proxy::stall_downstream`] do it one way only: with the latter a server
//!   acts on requests whose answers the client never gets.
//! - [`Proxy::refuse`] closes each new connection as soon as it is accepted, without reaching the upstream.
//!
//! For a Kafka broker the clients must reach the broker through the proxy on every connection, not only the
//! bootstrap one: the broker must advertise the proxy's address. `kafka::Tansu::start_behind` does that.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the proxy waits for the upstream to accept a connection before closing the client's.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running proxy; stops accepting and closes every connection when dropped.
pub struct Proxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: Mutex<SocketAddr>,
    state: Mutex<State>,
    /// Signalled when a stall ends or connections are closed, for pumps holding bytes.
    changed: Condvar,
    refuse: AtomicBool,
    stop: AtomicBool,
    accepted: AtomicU64,
    refused: AtomicU64,
    forwarded: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Client-to-upstream bytes held.
    stalled_up: bool,
    /// Upstream-to-client bytes held.
    stalled_down: bool,
    next_id: u64,
    /// Open connections by id: the client's socket and the upstream one.
    open: HashMap<u64, (TcpStream, TcpStream)>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes connection `id` (both sockets) if it is still open.
    fn close(&self, id: u64) {
        let removed = self.state().open.remove(&id);
        if let Some((client, server)) = removed {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
        self.changed.notify_all();
    }

    fn close_all(&self) -> usize {
        let drained: Vec<_> = self.state().open.drain().collect();
        for (_, (client, server)) in &drained {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
        self.changed.notify_all();
        drained.len()
    }
}

impl Proxy {
    /// Starts a proxy on a free `127.0.0.1` port forwarding to `upstream`. The upstream is only reached when
    /// a client connects, so it need not be up yet (see [`Proxy::set_upstream`]).
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy's loopback port");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            refuse: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("proxy-{}-accept", addr.port()))
                .spawn(move || accept_loop(listener, shared))
                .expect("spawning the proxy's accept thread")
        };
        Proxy { shared, addr, acceptor: Some(acceptor) }
    }

    /// The port it listens on (on `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address it listens on: what clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        *self.shared.upstream.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forwards connections accepted from now on to `upstream`; open ones keep theirs (see [`Proxy::cut`]).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().unwrap_or_else(|e| e.into_inner()) = upstream;
    }

    /// Closes every open connection now, both sides; returns how many there were. New connections are still
    /// accepted (unless [`Proxy::refuse`] is on).
    pub fn cut(&self) -> usize {
        self.shared.close_all()
    }

    /// With `true`, stops forwarding bytes in both directions on every connection, open or new, without
    /// closing any; with `false`, forwards again, everything held first, in order.
    pub fn stall(&self, on: bool) {
        let mut state = self.shared.state();
        state.stalled_up = on;
        state.stalled_down = on;
        drop(state);
        self.shared.changed.notify_all();
    }

    /// [`Proxy::stall`] for the client-to-upstream direction only: requests are held, answers to earlier ones
    /// still flow.
    pub fn stall_upstream(&self, on: bool) {
        self.shared.state().stalled_up = on;
        self.shared.changed.notify_all();
    }

    /// [`Proxy::stall`] for the upstream-to-client direction only: the upstream receives and acts on requests,
    /// the client never hears back (until the stall ends or the connection is cut). With a Kafka broker, this
    /// is the "written but not acknowledged" case that idempotent producers exist for.
    pub fn stall_downstream(&self, on: bool) {
        self.shared.state().stalled_down = on;
        self.shared.changed.notify_all();
    }

    /// With `true`, closes every new connection as soon as it is accepted (open ones are left alone: combine
    /// with [`Proxy::cut`] for an outage); with `false`, forwards them again.
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
    }

    /// Connections open now (accepted, upstream reached, neither side closed).
    pub fn connections(&self) -> usize {
        self.shared.state().open.len()
    }

    /// Connections accepted since the start, refused ones included.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections closed on arrival because [`Proxy::refuse`] was on.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Bytes forwarded so far, both directions together.
    pub fn bytes_forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` connections are open; false if that did not happen within `timeout`.
    pub fn wait_for_connections(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.connections() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.shared.close_all();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for incoming in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = incoming else {
            // EMFILE and the like: back off rather than spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.refuse.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let shared = shared.clone();
        // Reaching the upstream may take a while: not on the accept thread.
        let spawned = std::thread::Builder::new().name("proxy-connect".into()).spawn(move || connect(client, shared));
        if let Err(e) = spawned {
            eprintln!("proxy: cannot spawn a connection thread: {e}");
        }
    }
}

fn connect(client: TcpStream, shared: Arc<Shared>) {
    let upstream = *shared.upstream.lock().unwrap_or_else(|e| e.into_inner());
    let Ok(server) = TcpStream::connect_timeout(&upstream, UPSTREAM_CONNECT_TIMEOUT) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let clones = (|| Ok::<_, std::io::Error>((client.try_clone()?, server.try_clone()?, client.try_clone()?, server.try_clone()?)))();
    let Ok((client_reader, server_reader, client_writer, server_writer)) = clones else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        return;
    };
    let id = {
        let mut state = shared.state();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let id = state.next_id;
        state.next_id += 1;
        state.open.insert(id, (client, server));
        id
    };
    for (from, to, upstream) in [(client_reader, server_writer, true), (server_reader, client_writer, false)] {
        let pump_shared = shared.clone();
        let name = if upstream { "proxy-up" } else { "proxy-down" };
        let spawned = std::thread::Builder::new().name(name.into()).spawn(move || pump(id, from, to, upstream, &pump_shared));
        if spawned.is_err() {
            shared.close(id);
        }
    }
}

/// Copies `from` to `to` until either side closes or the connection is cut, holding bytes while its
/// direction (`upstream`: client to server) is stalled.
fn pump(id: u64, mut from: TcpStream, mut to: TcpStream, upstream: bool, shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut state = shared.state();
            while (if upstream { state.stalled_up } else { state.stalled_down }) && state.open.contains_key(&id) {
                state = shared.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if !state.open.contains_key(&id) {
                // Cut while holding these bytes: they are dropped with the connection.
                return;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        shared.forwarded.fetch_add(n as u64, Ordering::SeqCst);
    }
    shared.close(id);
}
