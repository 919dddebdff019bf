// Follows one SSE URL with Node's `eventsource` package, exactly as an application would, and
// prints one JSON line per thing that happens: {"open"}, {"message": data}, {"error"}, and
// {"closed"} if the EventSource gives up (readyState CLOSED), which the tests treat as a failure.
import { EventSource } from "eventsource";

const source = new EventSource(process.argv[2]);
const say = (thing) => process.stdout.write(JSON.stringify(thing) + "\n");
source.onopen = () => say({ open: true });
source.onmessage = (event) => say({ message: JSON.parse(event.data), id: event.lastEventId });
source.onerror = () => say(source.readyState === EventSource.CLOSED ? { closed: true } : { error: true });
process.on("SIGTERM", () => { source.close(); process.exit(0); });
