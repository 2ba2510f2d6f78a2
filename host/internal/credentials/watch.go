package credentials

import (
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

// DefaultPollInterval is how often a Watcher re-reads its files even when
// no change was signalled: a backstop for file systems without inotify
// events (some network and FUSE mounts).
const DefaultPollInterval = 30 * time.Second

// debounce lets a burst of events (Kubernetes writes a new timestamped
// directory, flips the ..data symlink, then removes the old directory)
// settle into one notification.
const debounce = 50 * time.Millisecond

// Watcher calls a function when a file that a credential chain reads may
// have changed. It watches the directory holding each file, and the
// directory the file's symlinks resolve to, because Kubernetes updates a
// mounted secret by writing a new directory and atomically renaming a
// ..data symlink beside the file: the file's own inode never changes, so a
// watch on the file alone would miss the update.
type Watcher struct {
	w     *fsnotify.Watcher
	paths []string
	poll  time.Duration
	fn    func()

	mu      sync.Mutex
	watched map[string]bool

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Watch returns a Watcher for the file sources of creds, or nil when they
// have none (nothing can change). fn is called, from the Watcher's own
// goroutine, after each burst of changes and every poll interval (0 means
// DefaultPollInterval); it should re-resolve and compare. A directory
// that does not exist yet is retried at each poll.
func Watch(creds []config.Credential, poll time.Duration, fn func()) (*Watcher, error) {
	var paths []string
	for _, c := range creds {
		for _, s := range c.Sources {
			if s.Kind == "file" && s.Path != "" {
				paths = append(paths, s.Path)
			}
		}
	}
	if len(paths) == 0 {
		return nil, nil
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	w := &Watcher{w: fw, paths: paths, poll: poll, fn: fn, watched: map[string]bool{},
		stop: make(chan struct{}), done: make(chan struct{})}
	w.rewatch()
	go w.loop()
	return w, nil
}

// Close stops watching. It is safe to call on a nil Watcher.
func (w *Watcher) Close() {
	if w == nil {
		return
	}
	w.once.Do(func() { close(w.stop) })
	<-w.done
	w.w.Close()
}

// rewatch adds the directories of every path and of what its symlinks
// point at now; after a symlink flip that is a new directory.
func (w *Watcher) rewatch() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.paths {
		dirs := []string{filepath.Dir(p)}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		for _, d := range dirs {
			if w.watched[d] {
				continue
			}
			if err := w.w.Add(d); err == nil {
				w.watched[d] = true
			}
		}
	}
}

func (w *Watcher) loop() {
	defer close(w.done)
	tick := time.NewTicker(w.poll)
	defer tick.Stop()
	var settle <-chan time.Time
	for {
		select {
		case <-w.stop:
			return
		case ev, ok := <-w.w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				// A removed directory drops its watch.
				w.mu.Lock()
				delete(w.watched, ev.Name)
				w.mu.Unlock()
			}
			if settle == nil {
				settle = time.After(debounce)
			}
		case _, ok := <-w.w.Errors:
			if !ok {
				return
			}
		case <-settle:
			settle = nil
			w.rewatch()
			w.fn()
		case <-tick.C:
			w.rewatch()
			w.fn()
		}
	}
}
