package events

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// adjustSpec lets tests break a program before it is loaded, so that the
// kernel really refuses it.
var adjustSpec func(*ebpf.CollectionSpec)

// loader loads the programs of one object one by one against maps created
// once, so that every program shares the maps but fails alone (as
// cilium/pwru loads its optional programs).
type loader struct {
	spec *ebpf.CollectionSpec
	maps *ebpf.Collection
}

func newLoader(spec *ebpf.CollectionSpec) (*loader, error) {
	only := spec.Copy()
	only.Programs = nil
	maps, err := ebpf.NewCollection(only)
	if err != nil {
		return nil, err
	}
	return &loader{spec: spec, maps: maps}, nil
}

func (l *loader) program(name string) (*ebpf.Program, error) {
	one := l.spec.Copy()
	for n := range one.Programs {
		if n != name {
			delete(one.Programs, n)
		}
	}
	if one.Programs[name] == nil {
		return nil, fmt.Errorf("no program %s in the object", name)
	}
	coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{MapReplacements: l.maps.Maps})
	if err != nil {
		return nil, err
	}
	p := coll.Programs[name]
	delete(coll.Programs, name)
	coll.Close() // the clones of the shared maps
	return p, nil
}

// loadFeature loads every program of a feature, or none.
func (l *loader) loadFeature(progs []string, into map[string]*ebpf.Program) (refused string, err error) {
	loaded := make([]string, 0, len(progs))
	for _, name := range progs {
		p, err := l.program(name)
		if err != nil {
			for _, n := range loaded {
				into[n].Close()
				delete(into, n)
			}
			return name, err
		}
		into[name] = p
		loaded = append(loaded, name)
	}
	return "", nil
}

// openLoaded is what a load leaves for the tracer: shared maps, the
// programs of the features that loaded and their status.
type loadedObjects struct {
	maps     *ebpf.Collection
	progs    map[string]*ebpf.Program
	features []FeatureStatus
}

// loadAll loads the core and each feature not disabled. A core program
// the kernel refuses is an error; any other refusal turns its feature off.
func loadAll(spec *ebpf.CollectionSpec, disabled map[Feature]bool, twUnavailable error) (*loadedObjects, error) {
	l, err := newLoader(spec)
	if err != nil {
		return nil, fmt.Errorf("creating the BPF maps: %w", explainLoad(err))
	}
	out := &loadedObjects{maps: l.maps, progs: map[string]*ebpf.Program{}}
	for _, def := range featureDefs {
		st := def.status()
		switch {
		case def.name != FeatureCore && disabled[def.name]:
			st.disable()
		case def.name == FeatureTimeWait && twUnavailable != nil:
			st.refuse("", twUnavailable)
		case def.missingTracepoint():
			st.unsupported(def)
		default:
			if prog, err := l.loadFeature(def.programs, out.progs); err != nil {
				if def.name == FeatureCore {
					out.close()
					return nil, coreRefused(prog, err)
				}
				st.refuse(prog, err)
			}
		}
		out.features = append(out.features, st)
	}
	return out, nil
}

func coreRefused(prog string, err error) error {
	return refusal{fmt.Sprintf("the kernel refused %s, a core program (every state change goes through it): %s", prog, KernelReason(err)), err}
}

func (o *loadedObjects) close() {
	for _, p := range o.progs {
		p.Close()
	}
	o.maps.Close()
}

func (o *loadedObjects) status(f Feature) *FeatureStatus {
	for i := range o.features {
		if o.features[i].Name == f {
			return &o.features[i]
		}
	}
	return nil
}

// attachTaskIter attaches a task iterator that walks one task, the
// daemon's main thread. Kernels before 6.1 have no task filter: they
// ignore it and walk every task.
func attachTaskIter(prog *ebpf.Program) (*link.Iter, error) {
	// union bpf_iter_link_info: task.tid, task.pid, task.pid_fd, padded
	// to the size of the union's largest member. Older kernels read only
	// its first 4 bytes and check that the rest is zero.
	info := [4]uint32{uint32(os.Getpid())}
	// BPF_LINK_CREATE's part of union bpf_attr; iter_info as a Go pointer
	// (64-bit) so that the collector and stack moves see it.
	attr := struct {
		progFd, targetFd, attachType, flags uint32
		iterInfo                            unsafe.Pointer
		iterInfoLen                         uint32
		_                                   uint32
	}{
		progFd:      uint32(prog.FD()),
		attachType:  uint32(ebpf.AttachTraceIter),
		iterInfo:    unsafe.Pointer(&info),
		iterInfoLen: uint32(unsafe.Sizeof(info)),
	}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_CREATE, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(&info)
	if errno != 0 {
		return nil, fmt.Errorf("attaching %s: %w", prog, errno)
	}
	l, err := link.NewFromFD(int(fd)) // closes fd when it fails
	if err != nil {
		return nil, err
	}
	it, ok := l.(*link.Iter)
	if !ok {
		l.Close()
		return nil, errors.New("task iterator link is not an iterator")
	}
	return it, nil
}
