//! One persistent, interactive bash per conversation, on a pseudo-terminal.
//!
//! Each command runs inside the shell itself (so `cd`, variables, functions and an
//! activated virtualenv persist). A marker prompt (PS1) tells when a command finished,
//! with its exit code and working directory. Job control gives each command its own
//! process group, which a hard timeout or a stop kills.

use nix::pty::{openpty, Winsize};
use nix::sys::termios::{self, LocalFlags, OutputFlags, SetArg};
use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::output_tap::OutputTap;
use super::process;

const MARK: &[u8] = b"###OH_PS1###";
const END: &[u8] = b"###OH_END###";
/// The prompt bash prints after every command: exit code and working directory.
const PS1: &str = r"\n###OH_PS1###$?|$PWD###OH_END###\n";
/// Output kept for one command; beyond it the middle is dropped.
const MAX_OUTPUT: usize = 4 * 1024 * 1024;

/// Why the shell could not do what was asked.
#[derive(Debug, Error)]
pub enum ShellError {
    #[error("cannot start bash: {0}")]
    Spawn(String),
    #[error("the shell has exited")]
    Exited,
    #[error("cannot write to the shell: {0}")]
    Write(String),
}

/// How a command ended (so far).
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// Finished with this exit code.
    Exited(i32),
    /// Still running: no new output for the soft timeout.
    StillRunning,
    /// Killed at its hard timeout of this many seconds.
    TimedOut(u64),
}

/// The result of running or continuing a command.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub output: String,
    pub ended: Ended,
    pub working_dir: String,
    /// True when this continues a command that was already running.
    pub continued: bool,
}

/// What `run` is asked to do.
#[derive(Debug, Clone)]
pub enum Input {
    /// A new command line.
    Command(String),
    /// Text (or a control key) for the running process; empty = just wait for more output.
    ToProcess(String),
}

struct Buffer {
    bytes: Vec<u8>,
    dropped: usize,
    eof: bool,
}

/// The state of the command in progress, if any.
struct Running {
    /// Processes of the session before the command started (background servers).
    before: HashSet<i32>,
    seq: u64,
}

/// A persistent bash session.
pub struct Shell {
    pid: i32,
    master: Arc<AsyncFd<OwnedFd>>,
    buffer: Arc<(Mutex<Buffer>, Notify)>,
    running: tokio::sync::Mutex<Option<Running>>,
    /// The processes that predate the running command, readable without waiting for it.
    before: Mutex<Option<HashSet<i32>>>,
    /// Watchdogs compare this to their command's sequence number.
    seq: Arc<AtomicU64>,
    cwd: Mutex<String>,
    soft_timeout: Duration,
    child: Mutex<tokio::process::Child>,
}

fn configure_terminal(fd: &OwnedFd) -> Result<(), ShellError> {
    let mut t = termios::tcgetattr(fd).map_err(|e| ShellError::Spawn(e.to_string()))?;
    // No echo of what we write, and no "\n" → "\r\n" translation of output.
    t.local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ECHONL | LocalFlags::ECHOCTL);
    t.output_flags.remove(OutputFlags::OPOST);
    termios::tcsetattr(fd, SetArg::TCSANOW, &t).map_err(|e| ShellError::Spawn(e.to_string()))
}

/// Shells starting at once, server-wide (from spawn to the first prompt).
static STARTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

impl Shell {
    /// Starts bash in `cwd`, confined by `sandbox`, and waits for its first prompt.
    pub async fn start(
        cwd: &Path,
        soft_timeout: Duration,
        env: &[(String, String)],
        sandbox: super::sandbox::Prepared,
    ) -> Result<Arc<Shell>, ShellError> {
        // Shells start a few at a time: a thousand conversations opening together would
        // otherwise share the CPU so thinly that none shows its prompt in time.
        let _turn = STARTING.acquire().await;
        let winsize = Winsize {
            ws_row: 50,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&winsize), None).map_err(|e| ShellError::Spawn(e.to_string()))?;
        configure_terminal(&pty.slave)?;
        let stdio = |fd: &OwnedFd| -> Result<std::process::Stdio, ShellError> {
            Ok(fd
                .try_clone()
                .map_err(|e| ShellError::Spawn(e.to_string()))?
                .into())
        };
        let mut cmd = tokio::process::Command::new("bash");
        cmd.args(["--noprofile", "--norc", "--noediting", "+H", "-i"])
            .current_dir(cwd)
            .env_clear()
            .envs(super::child_env::from_server())
            .env("PS1", PS1)
            .env("PS2", "")
            .env("PROMPT_COMMAND", "")
            .env("TERM", "dumb")
            .env("PAGER", "cat")
            .env("GIT_PAGER", "cat")
            .env("HISTFILE", "/dev/null")
            .stdin(stdio(&pty.slave)?)
            .stdout(stdio(&pty.slave)?)
            .stderr(stdio(&pty.slave)?)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // If the server dies without cleaning up (SIGKILL), the shell dies too.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // After the session is set up: the namespaces, capabilities and Landlock.
        sandbox.apply_to(cmd.as_std_mut());
        let child = cmd.spawn().map_err(|e| ShellError::Spawn(e.to_string()))?;
        let pid = child.id().map(|p| p as i32).ok_or(ShellError::Exited)?;
        drop(pty.slave);
        nix::fcntl::fcntl(
            &pty.master,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|e| ShellError::Spawn(e.to_string()))?;
        // SAFETY: the AsyncFd owns the descriptor, which stays open for its lifetime.
        let master = unsafe { AsyncFd::register(pty.master) }
            .map_err(|e| ShellError::Spawn(e.to_string()))?;
        let master = Arc::new(master);
        let buffer = Arc::new((
            Mutex::new(Buffer {
                bytes: Vec::new(),
                dropped: 0,
                eof: false,
            }),
            Notify::new(),
        ));
        tokio::spawn(read_loop(master.clone(), buffer.clone()));
        let shell = Arc::new(Shell {
            pid,
            master,
            buffer,
            running: tokio::sync::Mutex::new(None),
            before: Mutex::new(None),
            seq: Arc::new(AtomicU64::new(0)),
            cwd: Mutex::new(cwd.display().to_string()),
            soft_timeout,
            child: Mutex::new(child),
        });
        // The first prompt says the shell is ready.
        match shell
            .wait(None, Some(Instant::now() + Duration::from_secs(10)))
            .await
        {
            Some((_, Ended::Exited(_), _)) => {
                // The prompt stays this shell's own: exported, `env` in a command would
                // print the marker and cut that command's output short.
                shell
                    .run(
                        Input::Command("export -n PS1 PS2 PROMPT_COMMAND".into()),
                        Duration::from_secs(10),
                        false,
                    )
                    .await?;
                Ok(shell)
            }
            _ => Err(ShellError::Spawn("bash did not show its prompt".into())),
        }
    }

    /// Whether bash itself has ended (the model ran `exit`, or it was killed).
    pub fn has_exited(&self) -> bool {
        self.child
            .lock()
            .map(|mut c| !matches!(c.try_wait(), Ok(None)))
            .unwrap_or(true)
    }

    /// The working directory after the last finished command.
    pub fn cwd(&self) -> String {
        self.cwd.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Runs a command or feeds the running one. `hard_timeout` kills the command's
    /// processes; with `blocking`, the soft timeout (no new output) does not apply.
    pub async fn run(
        self: &Arc<Self>,
        input: Input,
        hard_timeout: Duration,
        blocking: bool,
    ) -> Result<CommandOutput, ShellError> {
        self.run_tapped(input, hard_timeout, blocking, None).await
    }

    /// [`Shell::run`], giving the command's output to `tap` as it is produced (without
    /// the shell's prompt marker).
    pub async fn run_tapped(
        self: &Arc<Self>,
        input: Input,
        hard_timeout: Duration,
        blocking: bool,
        tap: Option<&dyn OutputTap>,
    ) -> Result<CommandOutput, ShellError> {
        let mut running = self.running.lock().await;
        if running.is_some() && matches!(input, Input::Command(_)) && self.prompt_seen() {
            // The previous command finished while nobody was waiting for it.
            self.clear_buffer();
            *running = None;
        }
        let continued = running.is_some();
        match (&input, continued) {
            (Input::Command(c), true) => return Ok(self.not_executed(c)),
            (Input::ToProcess(_), false) => {
                return Ok(CommandOutput {
                    output: "[ERROR: No previous running command to interact with.]".into(),
                    ended: Ended::Exited(1),
                    working_dir: self.cwd(),
                    continued: false,
                })
            }
            _ => {}
        }
        let deadline = Instant::now() + hard_timeout;
        match &input {
            Input::Command(c) => {
                self.clear_buffer();
                let before: HashSet<i32> = process::session_processes(self.pid)
                    .into_iter()
                    .map(|p| p.pid)
                    .collect();
                self.set_before(Some(before.clone()));
                let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
                *running = Some(Running { before, seq });
                // A group command runs in the shell itself and ends with one prompt.
                self.write(format!("{{ {c}\n}}\n").as_bytes()).await?;
            }
            Input::ToProcess(text) => {
                if let Some(r) = running.as_mut() {
                    r.seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
                }
                let bytes: Vec<u8> = match text.as_str() {
                    "" => Vec::new(),
                    "C-c" => vec![0x03],
                    "C-d" => vec![0x04],
                    "C-z" => vec![0x1a],
                    t => format!("{t}\n").into_bytes(),
                };
                if !bytes.is_empty() {
                    self.write(&bytes).await?;
                }
            }
        }
        let soft = if blocking {
            None
        } else {
            Some(self.soft_timeout)
        };
        let Some((mut output, ended, cwd)) = self.wait_tapped(soft, Some(deadline), tap).await
        else {
            return Err(ShellError::Exited);
        };
        let ended = match ended {
            Ended::Exited(code) => {
                *running = None;
                self.set_before(None);
                return Ok(CommandOutput {
                    output,
                    ended: Ended::Exited(code),
                    working_dir: cwd,
                    continued,
                });
            }
            Ended::StillRunning => {
                if let Some(r) = running.as_ref() {
                    self.spawn_watchdog(r.seq, deadline, r.before.clone());
                }
                Ended::StillRunning
            }
            Ended::TimedOut(_) => {
                if let Some(r) = running.take() {
                    process::kill_session_except(self.pid, &r.before, false);
                }
                self.set_before(None);
                // The shell prints its prompt once the command is gone.
                if let Some((more, _, _)) = self
                    .wait_tapped(None, Some(Instant::now() + Duration::from_secs(5)), tap)
                    .await
                {
                    output.push_str(&more);
                }
                Ended::TimedOut(hard_timeout.as_secs())
            }
        };
        Ok(CommandOutput {
            output,
            ended,
            working_dir: self.cwd(),
            continued,
        })
    }

    fn not_executed(&self, command: &str) -> CommandOutput {
        CommandOutput {
            output: format!(
                "[Your command \"{command}\" is NOT executed. The previous command is still running - You CANNOT send new commands until the previous command is completed. By setting `is_input` to `true`, you can interact with the current process: You may wait longer to see additional output of the previous command by sending empty command '', send other commands to interact with the current process, send keys (\"C-c\", \"C-z\", \"C-d\") to interrupt/kill the previous command before sending your new command, or use the timeout parameter in execute_bash for future commands.]"
            ),
            ended: Ended::StillRunning,
            working_dir: self.cwd(),
            continued: false,
        }
    }

    fn set_before(&self, before: Option<HashSet<i32>>) {
        if let Ok(mut b) = self.before.lock() {
            *b = before;
        }
    }

    /// Kills everything the running command started (background jobs of earlier
    /// commands stay).
    pub fn interrupt(&self) {
        let before = self.before.lock().ok().and_then(|b| b.clone());
        if let Some(before) = before {
            process::kill_session_except(self.pid, &before, false);
        }
    }

    /// Kills the shell and every process of its session.
    pub fn kill_all(&self) {
        process::kill_session_except(self.pid, &HashSet::new(), true);
    }

    fn spawn_watchdog(&self, seq: u64, deadline: Instant, before: HashSet<i32>) {
        let current = self.seq.clone();
        let pid = self.pid;
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            // Only if the same command is still the latest one.
            if current.load(Ordering::Acquire) == seq {
                process::kill_session_except(pid, &before, false);
            }
        });
    }

    fn clear_buffer(&self) {
        if let Ok(mut b) = self.buffer.0.lock() {
            b.bytes.clear();
            b.dropped = 0;
        }
    }

    fn prompt_seen(&self) -> bool {
        self.buffer
            .0
            .lock()
            .map(|b| find(&b.bytes, MARK).is_some())
            .unwrap_or(false)
    }

    async fn write(&self, mut bytes: &[u8]) -> Result<(), ShellError> {
        while !bytes.is_empty() {
            let mut guard = self
                .master
                .writable()
                .await
                .map_err(|e| ShellError::Write(e.to_string()))?;
            match guard
                .try_io(|fd| nix::unistd::write(fd.get_ref(), bytes).map_err(std::io::Error::from))
            {
                Ok(Ok(n)) => bytes = &bytes[n..],
                Ok(Err(e)) => return Err(ShellError::Write(e.to_string())),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Waits for the prompt, the soft timeout (no new output) or the deadline; takes
    /// the output so far from the buffer. `None` if the shell is gone.
    async fn wait(
        &self,
        soft: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Option<(String, Ended, String)> {
        self.wait_tapped(soft, deadline, None).await
    }

    /// [`Shell::wait`], handing the output to `tap` as it arrives.
    async fn wait_tapped(
        &self,
        soft: Option<Duration>,
        deadline: Option<Instant>,
        tap: Option<&dyn OutputTap>,
    ) -> Option<(String, Ended, String)> {
        let (lock, notify) = &*self.buffer;
        let mut last_len = 0;
        let mut quiet_since = Instant::now();
        let mut tapped = TapCursor::default();
        loop {
            let notified = notify.notified();
            {
                let mut b = lock.lock().ok()?;
                let mark = find(&b.bytes, MARK);
                if let Some(tap) = tap {
                    tapped.forward(&b, mark, tap);
                }
                if let Some(start) = mark {
                    if let Some(end_rel) = find(&b.bytes[start..], END) {
                        let meta =
                            String::from_utf8_lossy(&b.bytes[start + MARK.len()..start + end_rel])
                                .to_string();
                        let mut out_end = start;
                        if out_end > 0 && b.bytes[out_end - 1] == b'\n' {
                            out_end -= 1;
                        }
                        let output = take_output(&b.bytes[..out_end], b.dropped);
                        let mut rest = start + end_rel + END.len();
                        if b.bytes.get(rest) == Some(&b'\n') {
                            rest += 1;
                        }
                        b.bytes.drain(..rest);
                        b.dropped = 0;
                        let (code, cwd) = meta.split_once('|').unwrap_or(("-1", ""));
                        let code = code.trim().parse().unwrap_or(-1);
                        if !cwd.is_empty() {
                            if let Ok(mut c) = self.cwd.lock() {
                                *c = cwd.to_string();
                            }
                        }
                        return Some((output, Ended::Exited(code), cwd.to_string()));
                    }
                }
                if b.eof {
                    return None;
                }
                if b.bytes.len() != last_len {
                    last_len = b.bytes.len();
                    quiet_since = Instant::now();
                }
                let now = Instant::now();
                let soft_hit = soft.is_some_and(|s| now >= quiet_since + s);
                let hard_hit = deadline.is_some_and(|d| now >= d);
                if soft_hit || hard_hit {
                    let output = take_output(&b.bytes, b.dropped);
                    b.bytes.clear();
                    b.dropped = 0;
                    let ended = if hard_hit {
                        Ended::TimedOut(0)
                    } else {
                        Ended::StillRunning
                    };
                    return Some((output, ended, String::new()));
                }
            }
            let mut wake_at =
                deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            if let Some(s) = soft {
                wake_at = wake_at.min(quiet_since + s);
            }
            // New output, or the next timeout check.
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn take_output(bytes: &[u8], dropped: usize) -> String {
    let text = String::from_utf8_lossy(bytes).to_string();
    if dropped > 0 {
        format!("[... {dropped} bytes of output were dropped ...]\n{text}")
    } else {
        text
    }
}

/// How much of the buffer a tap has been given: the bytes up to the prompt marker, never
/// a tail that may be the start of the marker.
#[derive(Default)]
struct TapCursor {
    /// Bytes of the buffer already given.
    sent: usize,
    /// The buffer's `dropped` count when last looked at.
    dropped: usize,
}

impl TapCursor {
    /// Gives `tap` the bytes it has not had; `mark` is where the prompt marker starts.
    fn forward(&mut self, b: &Buffer, mark: Option<usize>, tap: &dyn OutputTap) {
        if b.dropped > self.dropped {
            // The reader cut bytes out of the middle, starting at `MAX_OUTPUT / 4`.
            let cut = b.dropped - self.dropped;
            let head = MAX_OUTPUT / 4;
            if self.sent > head {
                self.sent = head.max(self.sent.saturating_sub(cut));
            }
        }
        self.dropped = b.dropped;
        let end = match mark {
            Some(start) if start > 0 && b.bytes[start - 1] == b'\n' => start - 1,
            Some(start) => start,
            None => b.bytes.len() - marker_prefix_len(&b.bytes),
        };
        if end > self.sent {
            tap.output(&b.bytes[self.sent..end]);
            self.sent = end;
        }
    }
}

/// The length of the longest tail of `bytes` that could begin the prompt (`\n` + marker).
fn marker_prefix_len(bytes: &[u8]) -> usize {
    let mut prompt = Vec::with_capacity(MARK.len() + 1);
    prompt.push(b'\n');
    prompt.extend_from_slice(MARK);
    (1..prompt.len().min(bytes.len() + 1))
        .rev()
        .find(|n| bytes.ends_with(&prompt[..*n]))
        .unwrap_or(0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Moves the terminal's output into the buffer until the shell goes away.
async fn read_loop(master: Arc<AsyncFd<OwnedFd>>, buffer: Arc<(Mutex<Buffer>, Notify)>) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let Ok(mut guard) = master.readable().await else {
            break;
        };
        match guard
            .try_io(|fd| nix::unistd::read(fd.get_ref(), &mut chunk).map_err(std::io::Error::from))
        {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                if let Ok(mut b) = buffer.0.lock() {
                    b.bytes.extend_from_slice(&chunk[..n]);
                    let len = b.bytes.len();
                    if len > MAX_OUTPUT {
                        // Keep the head and the tail (where the prompt will be).
                        let (head, tail_start) = (MAX_OUTPUT / 4, len - MAX_OUTPUT / 2);
                        b.bytes.drain(head..tail_start);
                        b.dropped += tail_start - head;
                    }
                }
                buffer.1.notify_waiters();
            }
            Err(_would_block) => continue,
        }
    }
    if let Ok(mut b) = buffer.0.lock() {
        b.eof = true;
    }
    buffer.1.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what a tap is given.
    #[derive(Default)]
    struct Collect(Mutex<Vec<u8>>);

    impl OutputTap for Collect {
        fn output(&self, bytes: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(bytes);
        }
    }

    fn buffer(bytes: &[u8], dropped: usize) -> Buffer {
        Buffer {
            bytes: bytes.to_vec(),
            dropped,
            eof: false,
        }
    }

    #[test]
    fn a_tap_never_sees_the_prompt_marker_even_when_it_arrives_in_pieces() {
        let tap = Collect::default();
        let mut cursor = TapCursor::default();
        let mut text = b"out\n".to_vec();
        for piece in [&b"\n###OH_"[..], b"PS1###0|/w###OH_END###\n"] {
            let b = buffer(&text, 0);
            cursor.forward(&b, find(&b.bytes, MARK), &tap);
            text.extend_from_slice(piece);
        }
        let b = buffer(&text, 0);
        cursor.forward(&b, find(&b.bytes, MARK), &tap);
        assert_eq!(&*tap.0.lock().unwrap(), b"out\n");
    }

    #[test]
    fn only_a_tail_that_can_start_the_marker_is_held_back() {
        assert_eq!(marker_prefix_len(b"abc"), 0);
        assert_eq!(marker_prefix_len(b"abc\n"), 1);
        assert_eq!(marker_prefix_len(b"abc\n###OH"), 6);
        assert_eq!(marker_prefix_len(b"abc\n#x"), 0);
        assert_eq!(marker_prefix_len(b""), 0);
    }
}
