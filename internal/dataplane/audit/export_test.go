package audit

// File is what a segment file is to the writer, for tests that inject
// failures.
type File = segmentFile

// WrapFiles makes the log wrap every segment file it writes.
func WrapFiles(o *Options, wrap func(File) File) { o.wrapFile = wrap }

// Queued is how many Writes wait for the next commit.
func (l *Log) Queued() int {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return len(l.pending)
}
