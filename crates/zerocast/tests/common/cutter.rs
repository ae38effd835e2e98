//! A TCP relay in front of a server whose connections a test can cut (a network drop between a
//! client and the server): each accepted connection is piped both ways to `to` until
//! [`Cutter::cut`] shuts every connection open then, or [`Cutter::sever`] drops only the
//! clients' side; new ones are relayed again after either.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A relayed connection: the client's side, the server's, and whether it was severed.
type Relayed = (TcpStream, TcpStream, Arc<AtomicBool>);

pub struct Cutter {
    pub addr: SocketAddr,
    open: Arc<Mutex<Vec<Relayed>>>,
    /// Connections severed: their server side kept open, and silent.
    severed: Mutex<Vec<Relayed>>,
}

impl Cutter {
    /// Listens on a free loopback port and relays to `to`.
    pub fn start(to: SocketAddr) -> Cutter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let open: Arc<Mutex<Vec<Relayed>>> = Arc::default();
        let kept = open.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                let severed = Arc::new(AtomicBool::new(false));
                let clone = |s: &TcpStream| s.try_clone().unwrap();
                kept.lock()
                    .unwrap()
                    .push((clone(&client), clone(&server), severed.clone()));
                pipe(clone(&client), clone(&server), severed.clone());
                pipe(server, client, severed);
            }
        });
        Cutter {
            addr,
            open,
            severed: Mutex::default(),
        }
    }

    /// Cuts every connection relayed now, both ways.
    pub fn cut(&self) {
        for (c, s, _) in self.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Drops the clients' side of every connection relayed now, as a NAT that lost its state
    /// does: the server is told nothing (its side stays open, and silent).
    pub fn sever(&self) {
        let mut severed = self.severed.lock().unwrap();
        for relayed in self.open.lock().unwrap().drain(..) {
            relayed.2.store(true, Ordering::SeqCst);
            let _ = relayed.0.shutdown(Shutdown::Both);
            severed.push(relayed);
        }
    }
}

/// Copies `from` to `to` on a thread of its own until either ends, then shuts both (unless the
/// connection was severed: then the server is told nothing).
fn pipe(mut from: TcpStream, mut to: TcpStream, severed: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut b = [0u8; 16 << 10];
        while let Ok(n) = from.read(&mut b) {
            if n == 0 || to.write_all(&b[..n]).is_err() {
                break;
            }
        }
        if !severed.load(Ordering::SeqCst) {
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        }
    });
}
