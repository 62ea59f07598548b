import { describe, expect, it } from "vitest";
import { EventStreamParser } from "@/lib/sse";

describe("EventStreamParser", () => {
  it("yields whole events across chunk boundaries and skips comments", () => {
    const parser = new EventStreamParser();
    expect(parser.push(": ready\nretry: 3000\n\nid: 0\nevent: te")).toEqual([]);
    expect(parser.push('st\ndata: {"id":0}\n\n: heartbeat\n\nevent: alert\r\ndata: a\r\ndata: b\r\n\r\n')).toEqual([
      { event: "test", data: '{"id":0}', id: "0" },
      { event: "alert", data: "a\nb", id: null },
    ]);
  });

  it("defaults the event name to message", () => {
    expect(new EventStreamParser().push("data:x\n\n")).toEqual([{ event: "message", data: "x", id: null }]);
  });
});
