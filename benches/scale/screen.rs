//! A test terminal that says when a frame reached it: each `flush` publishes the screen's
//! text with the time, so a row can measure "key → screen" as the operator sees it.

use std::time::Instant;

use ratatui::backend::{Backend, ClearType, TestBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};
use tokio::sync::watch;

pub struct Screen {
    inner: TestBackend,
    frames: watch::Sender<(Instant, String)>,
}

impl Screen {
    pub fn new(width: u16, height: u16) -> (Self, watch::Receiver<(Instant, String)>) {
        let (frames, rx) = watch::channel((Instant::now(), String::new()));
        (
            Screen {
                inner: TestBackend::new(width, height),
                frames,
            },
            rx,
        )
    }
}

impl Backend for Screen {
    type Error = <TestBackend as Backend>::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        self.inner.draw(content)
    }
    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.hide_cursor()
    }
    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.show_cursor()
    }
    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        self.inner.get_cursor_position()
    }
    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        self.inner.set_cursor_position(position)
    }
    fn clear(&mut self) -> Result<(), Self::Error> {
        self.inner.clear()
    }
    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        self.inner.clear_region(clear_type)
    }
    fn size(&self) -> Result<Size, Self::Error> {
        self.inner.size()
    }
    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        self.inner.window_size()
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush()?;
        let text: String = self
            .inner
            .buffer()
            .content
            .iter()
            .map(|c| c.symbol())
            .collect();
        self.frames.send_replace((Instant::now(), text));
        Ok(())
    }
}

/// Wait (up to `limit`) for a frame flushed after `since` whose text satisfies `want`; how
/// long after `since` it came.
pub async fn frame_where(
    rx: &mut watch::Receiver<(Instant, String)>,
    since: Instant,
    limit: std::time::Duration,
    want: impl Fn(&str) -> bool,
) -> Option<std::time::Duration> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        {
            let frame = rx.borrow_and_update();
            if frame.0 >= since && want(&frame.1) {
                return Some(frame.0 - since);
            }
        }
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .ok()?
            .ok()?;
    }
}
