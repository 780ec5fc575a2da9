package a2awire

// Op is what an A2A method does, whatever its name in a version.
type Op int

// Operations.
const (
	OpUnknown Op = iota
	// OpSend sends a message and answers with a Task or a Message.
	OpSend
	// OpSendStream sends a message and answers with a stream of events.
	OpSendStream
	// OpGetTask, OpListTasks and OpCancelTask read, list and cancel tasks.
	OpGetTask
	OpListTasks
	OpCancelTask
	// OpSubscribe streams the events of an existing task.
	OpSubscribe
	// OpPushConfig is any push-notification configuration method, which
	// the gateway refuses.
	OpPushConfig
	// OpExtendedCard asks for the authenticated extended agent card.
	OpExtendedCard
)

// Streaming reports whether op answers with an event stream.
func (op Op) Streaming() bool { return op == OpSendStream || op == OpSubscribe }

// TaskParam reports whether op's params name one task by "id".
func (op Op) TaskParam() bool {
	return op == OpGetTask || op == OpCancelTask || op == OpSubscribe
}

var methods = map[Version]map[string]Op{
	V10: {
		"SendMessage":                      OpSend,
		"SendStreamingMessage":             OpSendStream,
		"GetTask":                          OpGetTask,
		"ListTasks":                        OpListTasks,
		"CancelTask":                       OpCancelTask,
		"SubscribeToTask":                  OpSubscribe,
		"CreateTaskPushNotificationConfig": OpPushConfig,
		"GetTaskPushNotificationConfig":    OpPushConfig,
		"ListTaskPushNotificationConfigs":  OpPushConfig,
		"DeleteTaskPushNotificationConfig": OpPushConfig,
		"GetExtendedAgentCard":             OpExtendedCard,
	},
	V03: {
		"message/send":                        OpSend,
		"message/stream":                      OpSendStream,
		"tasks/get":                           OpGetTask,
		"tasks/cancel":                        OpCancelTask,
		"tasks/resubscribe":                   OpSubscribe,
		"tasks/pushNotificationConfig/set":    OpPushConfig,
		"tasks/pushNotificationConfig/get":    OpPushConfig,
		"tasks/pushNotificationConfig/list":   OpPushConfig,
		"tasks/pushNotificationConfig/delete": OpPushConfig,
		"agent/getAuthenticatedExtendedCard":  OpExtendedCard,
	},
}

// Lookup finds what method means in version v; OpUnknown for a method the
// version does not have (0.3 has no ListTasks).
func Lookup(v Version, method string) Op { return methods[v][method] }

// MethodName is op's method name in version v ("" when v has none, or for
// OpPushConfig, which names several).
func MethodName(v Version, op Op) string {
	if op == OpPushConfig {
		return ""
	}
	for name, o := range methods[v] {
		if o == op {
			return name
		}
	}
	return ""
}
