//! The CPU collective backend: TCP between the ranks' processes, in a star around rank 0.
//!
//! Rank 0 listens; every other rank connects to it and introduces itself (magic, rank,
//! world, and the group's [`GroupSecret`]: the round's secret from the rendezvous, so a
//! process that can reach the port but was not told the secret is dropped). The secret
//! keeps strangers out; the traffic itself is plain TCP. An operation sends each rank's tensor to rank 0, which combines them in rank
//! order (so every rank gets bit-identical results) and sends the result back. Frames:
//! `op u8, seq u64, kind u8, ndim u8, dims i64 x ndim, bytes u64`, then the raw
//! little-endian elements; every rank numbers its operations, and a frame of another
//! operation or number is a [`CollectiveError::Mismatch`]. Reads time out, so a dead or
//! stuck peer becomes [`CollectiveError::Timeout`] or [`CollectiveError::PeerGone`].
//!
//! Traffic through rank 0 grows with the world size: fine for CPU training of small
//! models and for tests, which is what this backend is for.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tch::{Kind, Tensor};

use super::{check_kind, Collective, CollectiveError};

const MAGIC: u32 = 0x4558_4c43; // "EXLC"
/// How long a new connection has to introduce itself before it is dropped as a stranger.
const HELLO_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest tensor a frame may carry (1 GiB): above any tensor of the models trained
/// here (the largest, a BERT-base word embedding, is 94 MB), far below what would exhaust
/// a node's memory. A claim beyond it is refused before anything is allocated.
const MAX_FRAME_BYTES: u64 = 1 << 30;
/// The most dimensions a frame's tensor may have.
const MAX_DIMS: u8 = 8;
const OP_REDUCE: u8 = 1;
const OP_GATHER: u8 = 2;
const OP_BROADCAST: u8 = 3;

/// The secret every rank of one group presents to rank 0: 32 bytes, made by the node
/// holding rank 0 for each rendezvous and handed to the round's members by the
/// coordinator. A group run without a coordinator (ranks started by hand on one
/// machine) may use [`GroupSecret::NONE`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GroupSecret([u8; GroupSecret::BYTES]);

impl GroupSecret {
    /// Its length.
    pub const BYTES: usize = 32;
    /// No secret (all zero bytes): for groups formed without a rendezvous.
    pub const NONE: GroupSecret = GroupSecret([0; GroupSecret::BYTES]);

    /// A fresh random secret (from the operating system).
    pub fn random() -> std::io::Result<Self> {
        let mut bytes = [0u8; Self::BYTES];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The secret of `bytes` (the rendezvous' bootstrap); an error naming the length
    /// when it is not [`GroupSecret::BYTES`] long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let bytes: [u8; Self::BYTES] = bytes.try_into().map_err(|_| {
            format!(
                "a group secret has {} bytes, this one {}",
                Self::BYTES,
                bytes.len()
            )
        })?;
        Ok(Self(bytes))
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Compares in time independent of where the first difference is.
    fn matches(&self, other: &[u8]) -> bool {
        proto::auth::same_secret(other, &self.0)
    }
}

impl std::fmt::Debug for GroupSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupSecret(hidden)")
    }
}

/// The length of an introduction: magic, rank, world (u32 each), the secret.
const HELLO_BYTES: usize = 12 + GroupSecret::BYTES;

/// One rank's end of the star.
#[derive(Debug)]
pub struct TcpCollective {
    rank: usize,
    world: usize,
    /// Rank 0: a stream per rank (index 0 unused). Others: the stream to rank 0 at index 0.
    links: Vec<Option<TcpStream>>,
    seq: u64,
    timeout: Duration,
}

impl TcpCollective {
    /// Rank 0: accepts the `world - 1` other ranks presenting `secret` on `listener`
    /// within `timeout`.
    pub fn root(
        listener: TcpListener,
        world: usize,
        secret: &GroupSecret,
        timeout: Duration,
    ) -> Result<Self, CollectiveError> {
        let setup = |e: std::io::Error| CollectiveError::Setup(e.to_string());
        let mut links: Vec<Option<TcpStream>> = (0..world).map(|_| None).collect();
        listener.set_nonblocking(true).map_err(setup)?;
        let deadline = Instant::now() + timeout;
        let mut joined = 1;
        while joined < world {
            match listener.accept() {
                Ok((stream, peer)) => {
                    // A connection that does not introduce itself as a missing rank of
                    // this group (a port scan, a process of another job) is dropped and
                    // the group goes on gathering.
                    match hello(&stream, world, secret) {
                        Ok(rank) if links[rank].is_none() => {
                            configure(&stream, timeout).map_err(setup)?;
                            links[rank] = Some(stream);
                            joined += 1;
                        }
                        Ok(rank) => {
                            tracing::warn!(%peer, rank, "a second connection for a rank that joined: dropped")
                        }
                        Err(why) => tracing::warn!(%peer, %why, "a stranger connected: dropped"),
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        let missing: Vec<usize> =
                            (1..world).filter(|&r| links[r].is_none()).collect();
                        return Err(CollectiveError::Setup(format!(
                            "ranks {missing:?} did not connect within {} s",
                            timeout.as_secs()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(setup(e)),
            }
        }
        Ok(Self {
            rank: 0,
            world,
            links,
            seq: 0,
            timeout,
        })
    }

    /// Rank `rank` (> 0): connects to rank 0 at `root` and presents `secret`, retrying
    /// until `timeout`.
    pub fn join(
        root: SocketAddr,
        rank: usize,
        world: usize,
        secret: &GroupSecret,
        timeout: Duration,
    ) -> Result<Self, CollectiveError> {
        if rank == 0 || rank >= world {
            return Err(CollectiveError::Setup(format!(
                "join needs a rank in 1..{world}, got {rank}"
            )));
        }
        let deadline = Instant::now() + timeout;
        let mut stream = loop {
            match TcpStream::connect_timeout(&root, Duration::from_secs(2)) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(%root, error = %e, "rank 0 not reachable yet");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(CollectiveError::Setup(format!(
                        "cannot reach rank 0 at {root} within {} s: {e}",
                        timeout.as_secs()
                    )))
                }
            }
        };
        let setup = |e: std::io::Error| CollectiveError::Setup(e.to_string());
        configure(&stream, timeout).map_err(setup)?;
        stream
            .write_all(&introduction(rank as u32, world as u32, secret))
            .map_err(setup)?;
        Ok(Self {
            rank,
            world,
            links: vec![Some(stream)],
            seq: 0,
            timeout,
        })
    }

    fn link(&mut self, peer: usize) -> &mut TcpStream {
        let at = if self.rank == 0 { peer } else { 0 };
        self.links[at]
            .as_mut()
            .expect("a link to every peer after set-up")
    }

    fn send(&mut self, peer: usize, op: u8, t: &Tensor) -> Result<(), CollectiveError> {
        let kind = check_kind(t)?;
        let t = t.to_device(tch::Device::Cpu).contiguous();
        let dims = t.size();
        let numel = t.numel();
        let mut frame = Vec::with_capacity(32 + dims.len() * 8 + numel * kind.elt_size_in_bytes());
        frame.push(op);
        frame.extend_from_slice(&self.seq.to_le_bytes());
        frame.push(kind_code(kind));
        frame.push(dims.len() as u8);
        for d in &dims {
            frame.extend_from_slice(&d.to_le_bytes());
        }
        let bytes = numel * kind.elt_size_in_bytes();
        frame.extend_from_slice(&(bytes as u64).to_le_bytes());
        let at = frame.len();
        frame.resize(at + bytes, 0);
        t.f_copy_data_u8(&mut frame[at..], numel)
            .map_err(|e| CollectiveError::Unsupported(e.to_string()))?;
        let timeout = self.timeout;
        self.link(peer)
            .write_all(&frame)
            .map_err(|e| io_error(e, peer, timeout))
    }

    fn recv(&mut self, peer: usize, op: u8) -> Result<Tensor, CollectiveError> {
        let (seq, timeout) = (self.seq, self.timeout);
        let stream = self.link(peer);
        let io = |e| io_error(e, peer, timeout);
        let mut head = [0u8; 11];
        stream.read_exact(&mut head).map_err(io)?;
        let their_seq = u64::from_le_bytes(head[1..9].try_into().unwrap());
        if head[0] != op || their_seq != seq {
            return Err(CollectiveError::Mismatch(format!(
                "rank {peer} sent operation {} #{their_seq}, expected operation {op} #{seq}",
                head[0]
            )));
        }
        let kind = kind_of(head[9]).ok_or_else(|| {
            CollectiveError::Mismatch(format!("rank {peer} sent kind code {}", head[9]))
        })?;
        if head[10] > MAX_DIMS {
            return Err(CollectiveError::Mismatch(format!(
                "rank {peer} sent a tensor of {} dimensions (at most {MAX_DIMS})",
                head[10]
            )));
        }
        let mut dims = vec![0i64; head[10] as usize];
        for d in dims.iter_mut() {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).map_err(io)?;
            *d = i64::from_le_bytes(b);
        }
        let mut b = [0u8; 8];
        stream.read_exact(&mut b).map_err(io)?;
        let bytes = u64::from_le_bytes(b);
        // The shape's size, computed without overflow, must be what the frame claims and
        // within the frame limit: nothing is allocated for a claim that is not.
        let shape_bytes = dims
            .iter()
            .try_fold(kind.elt_size_in_bytes() as u64, |n, &d| {
                u64::try_from(d).ok().and_then(|d| n.checked_mul(d))
            });
        if shape_bytes != Some(bytes) || bytes > MAX_FRAME_BYTES {
            return Err(CollectiveError::Mismatch(format!(
                "rank {peer} sent {bytes} bytes for a {kind:?} tensor of shape {dims:?} (frames carry at most {MAX_FRAME_BYTES} bytes)"
            )));
        }
        let mut data = vec![0u8; bytes as usize];
        stream.read_exact(&mut data).map_err(io)?;
        Tensor::f_from_data_size(&data, &dims, kind)
            .map_err(|e| CollectiveError::Mismatch(e.to_string()))
    }

    fn peers(&self) -> std::ops::Range<usize> {
        1..self.world
    }
}

impl Collective for TcpCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), CollectiveError> {
        self.seq += 1;
        if self.rank == 0 {
            let mut acc = t.to_device(tch::Device::Cpu).copy();
            for peer in self.peers() {
                let x = self.recv(peer, OP_REDUCE)?;
                if x.size() != acc.size() || x.kind() != acc.kind() {
                    return Err(CollectiveError::Mismatch(format!(
                        "all-reduce of {:?} {:?} on rank 0, {:?} {:?} on rank {peer}",
                        acc.kind(),
                        acc.size(),
                        x.kind(),
                        x.size()
                    )));
                }
                acc += x;
            }
            for peer in self.peers() {
                self.send(peer, OP_REDUCE, &acc)?;
            }
            tch::no_grad(|| t.copy_(&acc));
        } else {
            self.send(0, OP_REDUCE, t)?;
            let sum = self.recv(0, OP_REDUCE)?;
            tch::no_grad(|| t.copy_(&sum));
        }
        Ok(())
    }

    fn all_gather(&mut self, t: &Tensor) -> Result<Vec<Tensor>, CollectiveError> {
        self.seq += 1;
        let device = t.device();
        let parts = if self.rank == 0 {
            let mut parts = vec![t.to_device(tch::Device::Cpu)];
            for peer in self.peers() {
                parts.push(self.recv(peer, OP_GATHER)?);
            }
            for peer in self.peers() {
                for part in &parts {
                    self.send(peer, OP_GATHER, part)?;
                }
            }
            parts
        } else {
            self.send(0, OP_GATHER, t)?;
            (0..self.world)
                .map(|_| self.recv(0, OP_GATHER))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(parts.into_iter().map(|p| p.to_device(device)).collect())
    }

    fn broadcast(&mut self, t: &mut Tensor, root: usize) -> Result<(), CollectiveError> {
        if root >= self.world {
            return Err(CollectiveError::Mismatch(format!(
                "broadcast from rank {root} in a group of {}",
                self.world
            )));
        }
        self.seq += 1;
        let value = if self.rank == 0 {
            let value = if root == 0 {
                t.shallow_clone()
            } else {
                self.recv(root, OP_BROADCAST)?
            };
            for peer in self.peers().filter(|&p| p != root) {
                self.send(peer, OP_BROADCAST, &value)?;
            }
            value
        } else if self.rank == root {
            self.send(0, OP_BROADCAST, t)?;
            return Ok(());
        } else {
            self.recv(0, OP_BROADCAST)?
        };
        if value.size() != t.size() {
            return Err(CollectiveError::Mismatch(format!(
                "broadcast of shape {:?} into {:?}",
                value.size(),
                t.size()
            )));
        }
        tch::no_grad(|| t.copy_(&value));
        Ok(())
    }

    fn barrier(&mut self) -> Result<(), CollectiveError> {
        let mut token = Tensor::zeros([1], (Kind::Float, tch::Device::Cpu));
        self.all_reduce_sum(&mut token)
    }
}

/// A rank's introduction to rank 0.
fn introduction(rank: u32, world: u32, secret: &GroupSecret) -> Vec<u8> {
    let mut hello = Vec::with_capacity(HELLO_BYTES);
    for w in [MAGIC, rank, world] {
        hello.extend_from_slice(&w.to_le_bytes());
    }
    hello.extend_from_slice(secret.as_bytes());
    hello
}

/// Reads a new connection's introduction within [`HELLO_TIMEOUT`]: the rank it claims,
/// if it is a rank of this group of `world` (other than 0) with the group's magic and
/// `secret`.
fn hello(stream: &TcpStream, world: usize, secret: &GroupSecret) -> Result<usize, String> {
    let mut stream = stream;
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(HELLO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut hello = [0u8; HELLO_BYTES];
    stream
        .read_exact(&mut hello)
        .map_err(|e| format!("no introduction within {} s: {e}", HELLO_TIMEOUT.as_secs()))?;
    let word = |i: usize| u32::from_le_bytes(hello[i..i + 4].try_into().unwrap());
    let (magic, rank, their_world) = (word(0), word(4) as usize, word(8) as usize);
    if magic != MAGIC || their_world != world || rank == 0 || rank >= world {
        return Err(format!(
            "introduced itself as rank {rank} of {their_world} (magic {magic:#x}); this group has {world} ranks"
        ));
    }
    if !secret.matches(&hello[12..]) {
        return Err(format!(
            "introduced itself as rank {rank} without the group's secret (a process of another round or job)"
        ));
    }
    Ok(rank)
}

fn configure(stream: &TcpStream, timeout: Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))
}

fn io_error(e: std::io::Error, peer: usize, timeout: Duration) -> CollectiveError {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => CollectiveError::Timeout {
            rank: peer,
            seconds: timeout.as_secs(),
        },
        _ => CollectiveError::PeerGone {
            rank: peer,
            reason: e.to_string(),
        },
    }
}

fn kind_code(k: Kind) -> u8 {
    match k {
        Kind::Float => 1,
        Kind::Double => 2,
        Kind::BFloat16 => 4,
        _ => 3, // Int64; check_kind admits nothing else
    }
}

fn kind_of(code: u8) -> Option<Kind> {
    match code {
        1 => Some(Kind::Float),
        2 => Some(Kind::Double),
        3 => Some(Kind::Int64),
        4 => Some(Kind::BFloat16),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The secret of the groups the tests form.
    const SECRET: GroupSecret = GroupSecret([7; GroupSecret::BYTES]);

    /// Runs `f(rank, group)` on `world` threads joined through a loopback star.
    pub(crate) fn on_group<T: Send + 'static>(
        world: usize,
        f: impl Fn(usize, &mut TcpCollective) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let f = std::sync::Arc::new(f);
        let timeout = Duration::from_secs(20);
        let mut handles = Vec::new();
        let g = f.clone();
        handles.push(std::thread::spawn(move || {
            let mut c = TcpCollective::root(listener, world, &SECRET, timeout).unwrap();
            g(0, &mut c)
        }));
        for rank in 1..world {
            let g = f.clone();
            handles.push(std::thread::spawn(move || {
                let mut c = TcpCollective::join(addr, rank, world, &SECRET, timeout).unwrap();
                g(rank, &mut c)
            }));
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.reshape([-1])).unwrap()
    }

    #[test]
    fn reduce_gather_broadcast_and_barrier_agree_on_every_rank() {
        let out = on_group(3, |rank, c| {
            let r = rank as f32;
            let mut sum = Tensor::from_slice(&[r, 10.0 * r]);
            c.all_reduce_sum(&mut sum).unwrap();
            // Rank r contributes r rows: shapes differ in the first dimension.
            let mine = Tensor::full(
                [rank as i64, 2],
                f64::from(r),
                (Kind::Float, tch::Device::Cpu),
            );
            let parts = c.all_gather(&mine).unwrap();
            let mut b = Tensor::from_slice(&[r; 3]);
            c.broadcast(&mut b, 2).unwrap();
            c.barrier().unwrap();
            let ids = Tensor::from_slice(&[rank as i64]);
            let all_ids = c.all_gather(&ids).unwrap();
            (
                values(&sum),
                parts
                    .iter()
                    .map(|p| (p.size(), values(p)))
                    .collect::<Vec<_>>(),
                values(&b),
                all_ids
                    .iter()
                    .map(|t| t.int64_value(&[0]))
                    .collect::<Vec<_>>(),
            )
        });
        for (sum, parts, b, ids) in out {
            assert_eq!(sum, [3.0, 30.0]);
            assert_eq!(parts.len(), 3);
            for (r, (size, v)) in parts.iter().enumerate() {
                assert_eq!(size, &[r as i64, 2]);
                assert!(v.iter().all(|&x| x == r as f32));
            }
            assert_eq!(b, [2.0; 3]);
            assert_eq!(ids, [0, 1, 2]);
        }
    }

    #[test]
    fn gradients_reduce_in_bf16_when_asked_and_stay_float32() {
        use crate::collective::{GradBuckets, GradReduce};
        // 1 + 1/256 is not a bf16 number: a bf16 reduction loses the 1/256.
        let out = on_group(2, |_, c| {
            let sums: Vec<Vec<f32>> = [GradReduce::Fp32, GradReduce::Bf16]
                .into_iter()
                .map(|how| {
                    let p =
                        Tensor::zeros([3], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
                    (&p * Tensor::from_slice(&[1.0f32 + 1.0 / 256.0, 2.0, 0.5]))
                        .sum(Kind::Float)
                        .backward();
                    GradBuckets::new(std::slice::from_ref(&p), 1 << 10, how)
                        .reduce(c)
                        .unwrap();
                    assert_eq!(p.grad().kind(), Kind::Float);
                    values(&p.grad())
                })
                .collect();
            sums
        });
        for sums in out {
            assert_eq!(sums[0], [2.0 + 2.0 / 256.0, 4.0, 1.0]);
            assert_eq!(sums[1], [2.0, 4.0, 1.0]);
        }
    }

    #[test]
    fn a_dead_peer_is_an_error_not_a_hang() {
        let out = on_group(2, |rank, c| {
            if rank == 1 {
                return None; // leaves: its end of the connection closes
            }
            let mut t = Tensor::from_slice(&[1f32]);
            Some(c.all_reduce_sum(&mut t).unwrap_err())
        });
        let err = out[0].as_ref().unwrap();
        assert!(
            matches!(err, CollectiveError::PeerGone { rank: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn mismatched_calls_and_bad_set_up_are_reported() {
        let out = on_group(2, |rank, c| {
            let t = Tensor::from_slice(&[1f32, 2.0]);
            if rank == 0 {
                c.all_gather(&t).err().map(|e| e.to_string())
            } else {
                let mut t = t;
                c.all_reduce_sum(&mut t).err().map(|e| e.to_string())
            }
        });
        assert!(
            out[0].as_deref().unwrap_or("").contains("mismatch"),
            "{out:?}"
        );
        let addr = "127.0.0.1:9".parse().unwrap();
        let err = TcpCollective::join(addr, 3, 2, &SECRET, Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("rank in 1..2"), "{err}");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let err =
            TcpCollective::root(listener, 2, &SECRET, Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("did not connect"), "{err}");
    }

    #[test]
    fn strangers_are_dropped_and_the_group_still_forms() {
        use std::io::Write;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let root = std::thread::spawn(move || {
            TcpCollective::root(listener, 2, &SECRET, Duration::from_secs(20))
        });
        // A port scan that says nothing, a client of another protocol, a rank of another
        // group, a rank 1 of this shape without the round's secret (another round or job
        // on the same port): none of them joins or stops the set-up.
        let _silent = TcpStream::connect(addr).unwrap();
        TcpStream::connect(addr)
            .unwrap()
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .unwrap();
        TcpStream::connect(addr)
            .unwrap()
            .write_all(&introduction(1, 8, &SECRET))
            .unwrap();
        let mut impostor = TcpStream::connect(addr).unwrap();
        impostor
            .write_all(&introduction(1, 2, &GroupSecret::NONE))
            .unwrap();
        let mut rank1 = TcpCollective::join(addr, 1, 2, &SECRET, Duration::from_secs(20)).unwrap();
        let mut root = root.join().unwrap().unwrap();
        assert_eq!(root.world, 2);
        // The group that formed is the real one: rank 1's tensor reaches rank 0, and the
        // impostor's connection was closed without a word.
        let sum = std::thread::spawn(move || {
            let mut t = Tensor::from_slice(&[2f32]);
            rank1.all_reduce_sum(&mut t).unwrap();
            values(&t)
        });
        let mut t = Tensor::from_slice(&[1f32]);
        root.all_reduce_sum(&mut t).unwrap();
        assert_eq!(values(&t), [3.0]);
        assert_eq!(sum.join().unwrap(), [3.0]);
        impostor
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(
            impostor.read(&mut buf).map_err(|e| e.kind()),
            Ok(0),
            "closed"
        );
    }

    #[test]
    fn a_frame_claiming_an_absurd_size_is_refused_before_anything_is_allocated() {
        use std::io::Write;
        let claims: [(Vec<i64>, u64); 3] = [
            // A dimension product that overflows 64 bits.
            (vec![1 << 40, 1 << 40], 0),
            // 8 GiB of floats: above the frame limit.
            (vec![1 << 31], 8 << 30),
            // Negative dimensions.
            (vec![-1, 4], 16),
        ];
        for (dims, bytes) in claims {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let root = std::thread::spawn(move || {
                let mut c =
                    TcpCollective::root(listener, 2, &SECRET, Duration::from_secs(20)).unwrap();
                let mut t = Tensor::from_slice(&[1f32, 2.0]);
                c.all_reduce_sum(&mut t).unwrap_err().to_string()
            });
            let mut peer = TcpStream::connect(addr).unwrap();
            peer.write_all(&introduction(1, 2, &SECRET)).unwrap();
            let mut frame = vec![OP_REDUCE];
            frame.extend_from_slice(&1u64.to_le_bytes());
            frame.push(kind_code(Kind::Float));
            frame.push(dims.len() as u8);
            for d in &dims {
                frame.extend_from_slice(&d.to_le_bytes());
            }
            frame.extend_from_slice(&bytes.to_le_bytes());
            peer.write_all(&frame).unwrap();
            let err = root.join().unwrap();
            assert!(
                err.contains("mismatch") && err.contains("at most"),
                "{dims:?}: {err}"
            );
        }
    }
}
