package gateway

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"runtime/debug"
	"strings"

	"github.com/graftlb/graftlb/protocol"
)

// Snapshotter is implemented by the objects of a movable type (see
// Restore): Snapshot returns the object's state as bytes that the type's
// restore function turns back into an equal object on another gateway.
// The gateway calls it only while no call of the object's session runs,
// so it sees a quiet object; it must not block.
type Snapshotter interface {
	Snapshot() ([]byte, error)
}

// snapshotMethod is Snapshotter's method: not remote on a movable type.
const snapshotMethod = "Snapshot"

var (
	snapshotterType = reflect.TypeFor[Snapshotter]()
	bytesType       = reflect.TypeFor[[]byte]()
)

// bindRestore checks that fn is func([]byte) (inst, error) and that inst
// implements Snapshotter.
func bindRestore(inst reflect.Type, fn any) (reflect.Value, error) {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return reflect.Value{}, fmt.Errorf("Restore: want a function, got %T", fn)
	}
	ft := v.Type()
	if ft.NumIn() != 1 || ft.In(0) != bytesType || ft.NumOut() != 2 || ft.Out(0) != inst || ft.Out(1) != errorType || ft.IsVariadic() {
		return reflect.Value{}, fmt.Errorf("Restore: want func([]byte) (%s, error), got %s", inst, ft)
	}
	if !inst.Implements(snapshotterType) {
		return reflect.Value{}, fmt.Errorf("Restore: %s has no method Snapshot() ([]byte, error) (gateway.Snapshotter)", inst)
	}
	return v, nil
}

// movedObject is one object of a session on its way to another gateway:
// the element of the Adopt body's "objects" array.
type movedObject struct {
	ID    uint64 `cbor:"id"`
	Type  string `cbor:"type"` // module@version.Type
	State []byte `cbor:"state"`
}

// adoptBody is the map in the Adopt call's argument array.
type adoptBody struct {
	Objects    []movedObject `cbor:"objects"`
	NextObject uint64        `cbor:"next_object"`
}

// snapshot captures every object of s, which must be marked moving (so no
// call of it runs, and its objects do not change). It fails when an object
// is not movable or its Snapshot fails or panics.
func (s *session) snapshot() (adoptBody, error) {
	s.mu.Lock()
	body := adoptBody{Objects: make([]movedObject, 0, len(s.objects)), NextObject: s.nextObj}
	objs := make(map[uint64]*object, len(s.objects))
	maps.Copy(objs, s.objects)
	s.mu.Unlock()
	for id, o := range objs {
		if !o.typ.movable() {
			return adoptBody{}, fmt.Errorf("object %d: %s.%s is not movable", id, o.typ.module, o.typ.name)
		}
		state, err := snapshotOf(o)
		if err != nil {
			return adoptBody{}, fmt.Errorf("object %d (%s.%s): Snapshot: %w", id, o.typ.module, o.typ.name, err)
		}
		body.Objects = append(body.Objects, movedObject{ID: id, Type: o.typ.module + "." + o.typ.name, State: state})
	}
	return body, nil
}

func snapshotOf(o *object) (state []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v\n%s", v, debug.Stack())
		}
	}()
	return o.v.Interface().(Snapshotter).Snapshot()
}

// movableLocked reports whether s can move now: every object movable and
// no call of it running. Caller must hold the sessions' mu.
func (s *session) movableLocked() bool {
	return s.active == 0 && s.moveDone == nil && s.movableType()
}

// movableType reports whether every object of s is movable.
func (s *session) movableType() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.objects {
		if !o.typ.movable() {
			return false
		}
	}
	return true
}

// restoreObjects rebuilds the objects of an Adopt body. The error is a
// *protocol.Error: BAD_ARGS for a malformed body, NOT_FOUND for a type
// this gateway does not host or cannot restore, APP_EXCEPTION when a
// restore function fails.
func (r *registry) restoreObjects(b *adoptBody) (map[uint64]*object, *protocol.Error) {
	objs := make(map[uint64]*object, len(b.Objects))
	for _, mo := range b.Objects {
		switch _, dup := objs[mo.ID]; {
		case mo.ID == 0:
			return nil, protocol.Errorf(protocol.CodeBadArgs, "adopt: object id 0")
		case dup:
			return nil, protocol.Errorf(protocol.CodeBadArgs, "adopt: object id %d twice", mo.ID)
		case mo.ID > b.NextObject:
			return nil, protocol.Errorf(protocol.CodeBadArgs, "adopt: object id %d above next_object %d", mo.ID, b.NextObject)
		}
		i := strings.LastIndexByte(mo.Type, '.')
		if i <= 0 || i == len(mo.Type)-1 {
			return nil, protocol.Errorf(protocol.CodeBadArgs, "adopt: object type %q is not module@version.Type", mo.Type)
		}
		t, perr := r.lookupType([]byte(mo.Type[:i]), []byte(mo.Type[i+1:]))
		if perr != nil {
			return nil, protocol.Errorf(protocol.CodeNotFound, "adopt: %s", perr.Message)
		}
		if !t.movable() {
			return nil, protocol.Errorf(protocol.CodeNotFound, "adopt: %s has no restore function", mo.Type)
		}
		v, err := restoreOne(t, mo.State)
		if err != nil {
			return nil, &protocol.Error{Code: protocol.CodeAppException, Message: fmt.Sprintf("adopt: restoring %s object %d: %v", mo.Type, mo.ID, err)}
		}
		objs[mo.ID] = &object{typ: t, v: v}
	}
	return objs, nil
}

var errNilRestore = errors.New("restore returned nil")

// restoreOne runs t's restore function on state; a panic is an error.
func restoreOne(t *typeDesc, state []byte) (v reflect.Value, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	out := t.restore.Call([]reflect.Value{reflect.ValueOf(state)})
	if e, _ := out[1].Interface().(error); e != nil {
		return reflect.Value{}, e
	}
	if out[0].IsNil() {
		return reflect.Value{}, errNilRestore
	}
	return out[0], nil
}
