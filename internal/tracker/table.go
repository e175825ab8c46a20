package tracker

// table is the live table by cookie, with a direct-mapped cache of recent
// rows in front of the map. Nine records in ten are for sockets a few
// milliseconds old, and a lookup in a map of ~150k rows (most of them in
// TIME_WAIT) missed the CPU's caches on nearly every record: a seventh of
// the daemon at full churn (docs/performance.md).
type table struct {
	rows map[uint64]*Socket
	hot  [hotRows]hotRow
}

// hotRows: 16 KiB of cache, far more than the sockets opened within the
// few milliseconds a connection's records come in (128 KiB did worse).
const (
	hotBits = 10
	hotRows = 1 << hotBits
)

type hotRow struct {
	cookie uint64
	s      *Socket
}

func newTable() table { return table{rows: make(map[uint64]*Socket)} }

// slot spreads cookies over the cache: the kernel hands them out in
// batches per CPU, so their low bits alone would put two CPUs' sockets in
// the same slots.
func (tb *table) slot(cookie uint64) *hotRow {
	return &tb.hot[(cookie*0x9e3779b97f4a7c15)>>(64-hotBits)]
}

func (tb *table) get(cookie uint64) *Socket {
	h := tb.slot(cookie)
	if h.cookie == cookie && h.s != nil {
		return h.s
	}
	s := tb.rows[cookie]
	if s != nil {
		*h = hotRow{cookie, s}
	}
	return s
}

func (tb *table) put(cookie uint64, s *Socket) {
	tb.rows[cookie] = s
	*tb.slot(cookie) = hotRow{cookie, s}
}

func (tb *table) remove(cookie uint64) {
	delete(tb.rows, cookie)
	if h := tb.slot(cookie); h.cookie == cookie {
		*h = hotRow{}
	}
}

func (tb *table) len() int { return len(tb.rows) }
