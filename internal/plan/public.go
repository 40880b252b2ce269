package plan

// The root package's Dataflow and Stream are their own types that wrap
// this package's, so that go doc shows their documented methods and
// nothing of the plan. The root package cannot export a way to unwrap them
// without exposing it to users too, so it registers these hooks at init,
// and internal/pubapi gives them typed signatures for op, window and the
// connectors.
var (
	// FlowHook returns the plan of a *runnel.Dataflow.
	FlowHook func(public any) *Dataflow
	// StreamHook returns the Stream[T] (as any) that a runnel.Stream[T] wraps.
	StreamHook func(public any) any
	// WrapHook stores the Stream[T] s in *public, a *runnel.Stream[T].
	WrapHook func(public any, s any)
	// SourceHook returns the engine.Source[T] (as any) behind a
	// runnel.Source[T]; SinkHook the engine.Sink[T] behind a runnel.Sink[T].
	SourceHook, SinkHook func(public any) any
)
