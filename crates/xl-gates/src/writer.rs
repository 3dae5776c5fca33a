//! The one thread that owns the [`GateEventSink`]: it takes jobs in arrival order, writes
//! everything queued during the previous write as one batch (group commit), and then runs each
//! job's completion in order. A completion is where a transport acknowledges its message.

use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::journal::{GateEventSink, Record};

/// What the writer reports to a job: `Ok` once its records are durable.
pub type Outcome = Result<(), String>;

/// Runs on the writer thread once the job's records are durable (or failed), with the
/// records back. Must not block.
pub type Completion = Box<dyn FnOnce(Outcome, Vec<Record>) + Send>;

pub(crate) struct Job {
    pub records: Vec<Record>,
    pub done: Completion,
}

/// The handle transports submit to.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
}

enum Msg {
    Job(Job),
    /// Finish what came before, then stop; later jobs fail.
    Stop,
}

/// Most jobs folded into one write.
const MAX_BATCH_JOBS: usize = 1024;

impl Writer {
    /// Starts the writer thread on `sink`.
    pub fn start(mut sink: Box<dyn GateEventSink>) -> std::io::Result<(Writer, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let t = std::thread::Builder::new()
            .name("gate-writer".into())
            .spawn(move || {
                let mut jobs: Vec<(usize, Completion)> = Vec::new();
                let mut records = Vec::new();
                let mut stopping = false;
                while !stopping {
                    let mut next = rx.recv().ok();
                    if next.is_none() {
                        break;
                    }
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Job(mut j) => {
                                jobs.push((j.records.len(), j.done));
                                records.append(&mut j.records);
                            }
                            Msg::Stop => {
                                stopping = true;
                                break;
                            }
                        }
                        if jobs.len() < MAX_BATCH_JOBS {
                            next = rx.try_recv().ok();
                        }
                    }
                    let outcome = if records.is_empty() {
                        Ok(())
                    } else {
                        sink.write(&records).map_err(|e| e.to_string())
                    };
                    let mut rest = std::mem::take(&mut records);
                    for (n, done) in jobs.drain(..) {
                        let tail = rest.split_off(n);
                        done(outcome.clone(), std::mem::replace(&mut rest, tail));
                    }
                }
            })?;
        Ok((Writer { tx }, t))
    }

    /// Queues `records`; `done` runs once they are durable. When the writer has stopped,
    /// `done` runs at once with an error.
    pub fn submit(&self, records: Vec<Record>, done: Completion) {
        if let Err(mpsc::SendError(Msg::Job(job))) = self.tx.send(Msg::Job(Job { records, done })) {
            (job.done)(Err("the gate event writer has stopped".into()), job.records);
        }
    }

    /// Asks the thread to stop after the jobs already queued.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}
