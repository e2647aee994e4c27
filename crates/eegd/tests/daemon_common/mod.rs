//! A real `eegd serve` for the daemon's end-to-end tests: started on a free port with a small
//! emulator pipeline, stopped with SIGTERM when dropped.
#![allow(dead_code)]
use futures_util::StreamExt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Emulator (4 channels, 1000 SPS) → to_voltage → notch → bandpass → websocket_sink `eeg`.
pub const PIPELINE: &str = "stages:
  - emulator: { channels: 4, rate: 1000, batch: 10 }
  - to_voltage: {}
  - notch: { hz: 50 }
  - bandpass: { low_hz: 1, high_hz: 40, order: 2 }
  - websocket_sink: { topic: eeg }
recording: { format: csv }
";

pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub addr: String,
    pub data_dir: PathBuf,
    pub token: Option<String>,
    _tmp: tempfile::TempDir,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(PIPELINE, &["--bind", "127.0.0.1:0"], None)
    }

    /// Starts `eegd serve --config <pipeline> <args>`, waiting for the line that names its port.
    pub fn start_with(pipeline: &str, args: &[&str], token: Option<&str>) -> Daemon {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("pipeline.yaml");
        std::fs::write(&cfg, pipeline).unwrap();
        let data_dir = tmp.path().join("data");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_eegd"));
        cmd.arg("serve").arg("--config").arg(&cfg).arg("--data-dir").arg(&data_dir).args(args);
        if let Some(t) = token {
            cmd.env("EEGD_TOKEN", t);
        } else {
            cmd.env_remove("EEGD_TOKEN");
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("eegd listening on ")
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        let base = base.replace("0.0.0.0", "127.0.0.1");
        let addr = base.trim_start_matches("http://").to_string();
        Daemon { child, base, addr, data_dir, token: token.map(str::to_string), _tmp: tmp }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub fn client(&self) -> reqwest::Client {
        let mut h = reqwest::header::HeaderMap::new();
        if let Some(t) = &self.token {
            h.insert(reqwest::header::AUTHORIZATION, format!("Bearer {t}").parse().unwrap());
        }
        reqwest::Client::builder().default_headers(h).build().unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.client().get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn send(&self, method: &str, path: &str, body: impl Into<String>) -> (u16, serde_json::Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = self.client().request(m, self.url(path)).body(body.into()).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Packets the source has produced so far.
    pub async fn source_packets(&self) -> u64 {
        let (_, p) = self.get("/api/pipeline").await;
        p["stages"][0]["packets"].as_u64().unwrap_or(0)
    }

    /// Waits until the source has produced more than `n` packets (fails after 20 s).
    pub async fn wait_packets_above(&self, n: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.source_packets().await;
            if now > n {
                return now;
            }
            assert!(Instant::now() < deadline, "the source stayed at {now} packets");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        self.child.wait().ok().and_then(|s| s.code())
    }

    pub fn sessions(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.data_dir)
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default()
    }

    /// Resident memory of the daemon, kB (from /proc).
    pub fn rss_kb(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}

/// The fields of a binary data frame's header (docs/protocol.md).
#[derive(Debug)]
pub struct Frame {
    pub kind: u16,
    pub channels: u32,
    pub samples: u32,
    pub rate: f64,
    pub seq: u64,
    pub timestamp_ns: i64,
    pub values: Vec<f32>,
}

pub fn parse_frame(b: &[u8]) -> Frame {
    assert!(b.len() >= 40, "a frame has a 40-byte header, got {} bytes", b.len());
    assert_eq!(&b[0..4], b"EEGD");
    assert_eq!(u16::from_le_bytes([b[4], b[5]]), 1, "version");
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let f = Frame {
        kind: u16::from_le_bytes([b[6], b[7]]),
        channels: u32_at(8),
        samples: u32_at(12),
        rate: f64::from_le_bytes(b[16..24].try_into().unwrap()),
        seq: u64::from_le_bytes(b[24..32].try_into().unwrap()),
        timestamp_ns: i64::from_le_bytes(b[32..40].try_into().unwrap()),
        values: b[40..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
    };
    assert_eq!(f.values.len(), (f.channels * f.samples) as usize, "payload size");
    f
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next binary frame on a data socket (fails after 10 s).
pub async fn next_frame(ws: &mut Ws) -> Frame {
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next()).await.expect("no frame within 10 s");
        if let Some(Ok(Message::Binary(b))) = m {
            return parse_frame(&b);
        }
        assert!(m.is_some(), "the socket closed");
    }
}

pub fn file_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
