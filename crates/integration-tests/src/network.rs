//! Network partitions for cluster tests: a TCP proxy in front of every listener of every node,
//! which can cut a node off from the other nodes while clients still reach it.
//!
//! All processes talk over 127.0.0.1, so a proxy cannot tell a broker's connection from a
//! client's by address. It asks the kernel instead: the connecting socket's inode comes from
//! `/proc/net/tcp` (matched by its port pair), and the node whose process holds that inode in
//! `/proc/<pid>/fd` is the connection's source. Connections from test code belong to no node and
//! are never cut.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a proxy waits for the node behind it to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The proxies of one cluster and which nodes are cut off.
#[derive(Clone, Default)]
pub struct Network {
    state: Arc<Mutex<NetworkState>>,
}

#[derive(Default)]
struct NetworkState {
    /// Node id by process id, as last given by [`Network::isolate`] or [`Network::set_nodes`].
    nodes_by_pid: HashMap<u32, i32>,
    /// Nodes cut off from every other node.
    isolated: BTreeSet<i32>,
    /// Connections passing through the proxies, pruned when they close.
    links: Vec<Link>,
}

/// One proxied connection.
struct Link {
    /// The connecting side's port, to find its owner again.
    source_port: u16,
    /// The proxy's port it connected to.
    proxy_port: u16,
    /// The node behind the proxy.
    destination: i32,
    /// Both sockets, to cut the connection.
    sockets: [TcpStream; 2],
    /// Set once either direction has stopped.
    closed: Arc<AtomicBool>,
}

impl Link {
    fn cut(&self) {
        for socket in &self.sockets {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

impl NetworkState {
    /// Whether traffic from `source` (a node, or `None` for test code) to node `destination`
    /// is cut.
    fn blocked(&self, source: Option<i32>, destination: i32) -> bool {
        match source {
            Some(source) if source != destination => {
                self.isolated.contains(&source) || self.isolated.contains(&destination)
            }
            _ => false,
        }
    }

    /// Which node's process holds each IPv4 connection now, by its (local port, remote port):
    /// `/proc/net/tcp` gives each connection's socket inode, and the nodes' `/proc/<pid>/fd`
    /// the inodes each process holds. Read once for all the connections a decision needs.
    fn node_sockets(&self) -> HashMap<(u16, u16), i32> {
        let mut node_by_inode: HashMap<u64, i32> = HashMap::new();
        for (pid, node) in &self.nodes_by_pid {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let inode = std::fs::read_link(fd.path()).ok().and_then(|target| {
                    let target = target.to_str()?;
                    target
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()
                });
                if let Some(inode) = inode {
                    node_by_inode.insert(inode, *node);
                }
            }
        }
        socket_inodes()
            .into_iter()
            .filter_map(|(ports, inode)| Some((ports, *node_by_inode.get(&inode)?)))
            .collect()
    }
}

impl Network {
    /// Remembers which process is which node, for connections accepted from now on.
    pub fn set_nodes(&self, nodes_by_pid: HashMap<u32, i32>) {
        self.state.lock().unwrap().nodes_by_pid = nodes_by_pid;
    }

    /// Cuts `node` off from every other node: open connections between them are closed and new
    /// ones are closed as soon as they are accepted. `nodes_by_pid` says which process is which
    /// node now.
    pub fn isolate(&self, node: i32, nodes_by_pid: HashMap<u32, i32>) {
        let mut state = self.state.lock().unwrap();
        state.nodes_by_pid = nodes_by_pid;
        state.isolated.insert(node);
        state.links.retain(|link| !link.is_closed());
        let sockets = state.node_sockets();
        for link in &state.links {
            let source = sockets.get(&(link.source_port, link.proxy_port)).copied();
            if state.blocked(source, link.destination) {
                link.cut();
            }
        }
    }

    /// Lets `node` reach the others again.
    pub fn heal(&self, node: i32) {
        self.state.lock().unwrap().isolated.remove(&node);
    }

    /// Starts a proxy in front of `upstream`, a listener of node `destination`; returns the
    /// address to give out instead.
    pub fn proxy(&self, destination: i32, upstream: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        let address = listener.local_addr().expect("proxy address");
        let network = self.clone();
        std::thread::spawn(move || {
            for accepted in listener.incoming() {
                let Ok(client) = accepted else { continue };
                network.accept(client, destination, address.port(), upstream);
            }
        });
        address
    }

    fn accept(&self, client: TcpStream, destination: i32, proxy_port: u16, upstream: SocketAddr) {
        let Ok(source_port) = client.peer_addr().map(|peer| peer.port()) else {
            return;
        };
        let mut state = self.state.lock().unwrap();
        let source = state
            .node_sockets()
            .get(&(source_port, proxy_port))
            .copied();
        if state.blocked(source, destination) {
            return;
        }
        let Ok(server) = TcpStream::connect_timeout(&upstream, CONNECT_TIMEOUT) else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(client_copy), Ok(server_copy)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        let closed = Arc::new(AtomicBool::new(false));
        state.links.push(Link {
            source_port,
            proxy_port,
            destination,
            sockets: [client_copy, server_copy],
            closed: Arc::clone(&closed),
        });
        drop(state);
        let (Ok(client_reader), Ok(server_reader)) = (client.try_clone(), server.try_clone())
        else {
            return;
        };
        let closed_too = Arc::clone(&closed);
        std::thread::spawn(move || pump(client_reader, server, &closed));
        std::thread::spawn(move || pump(server_reader, client, &closed_too));
    }
}

/// Copies bytes from `from` to `to` until either side closes, then closes both and sets
/// `closed`.
fn pump(mut from: TcpStream, mut to: TcpStream, closed: &AtomicBool) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                if to.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    closed.store(true, Ordering::Relaxed);
}

/// Every IPv4 socket's inode by its (local port, remote port), from `/proc/net/tcp`.
fn socket_inodes() -> HashMap<(u16, u16), u64> {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return HashMap::new();
    };
    let port_of = |field: &str| {
        field
            .rsplit(':')
            .next()
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
            Some(((port_of(local)?, port_of(remote)?), inode.parse().ok()?))
        })
        .collect()
}
