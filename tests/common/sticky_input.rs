//! A scripted terminal input that wakes like crossterm's `EventStream`: when a poll finds no
//! key it keeps that poll's waker, and ignores the wakers of later polls until a key arrives
//! and that first waker is woken (crossterm 0.29, `src/event/stream.rs`, `poll_next`: one wake
//! thread per empty poll, started only when none runs). A loop that ever polls it with a
//! no-op waker therefore misses the next key — the fault behind issue 14's late keys.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use futures::Stream;

#[derive(Default)]
struct Inner {
    queue: VecDeque<TermEvent>,
    /// The waker of the poll that found the queue empty ("the wake thread is running").
    waiting: Option<Waker>,
    closed: bool,
}

/// The stream the cockpit reads.
pub struct StickyInput(Arc<Mutex<Inner>>);

/// The test's side: typing into the stream.
#[derive(Clone)]
pub struct Keyboard(Arc<Mutex<Inner>>);

pub fn sticky_input() -> (Keyboard, StickyInput) {
    let inner = Arc::new(Mutex::new(Inner::default()));
    (Keyboard(inner.clone()), StickyInput(inner))
}

impl Keyboard {
    pub fn send(&self, ev: TermEvent) {
        let waker = {
            let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
            inner.queue.push_back(ev);
            inner.waiting.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub fn press(&self, code: KeyCode) {
        self.send(TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }

    pub fn close(&self) {
        let waker = {
            let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
            inner.closed = true;
            inner.waiting.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Stream for StickyInput {
    type Item = io::Result<TermEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ev) = inner.queue.pop_front() {
            return Poll::Ready(Some(Ok(ev)));
        }
        if inner.closed {
            return Poll::Ready(None);
        }
        if inner.waiting.is_none() {
            inner.waiting = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}
