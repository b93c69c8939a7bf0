// Play / Pause-Resume / Stop and the snapshot's seq. Availability comes from state.js's buttons().
import { h, add, button, setAttr, setDisabled, setText } from "./dom.js";
import { buttons, pauseButtonMode } from "../state.js";

/** The Stop button's hint while disconnected; `backend`: "kernel" | "server". */
export function stopQueuedTitle(backend) {
  return `Stop will be queued until the ${backend === "server" ? "server" : "kernel"} answers`;
}

/** `onClick(button)` gets "play" | "pause" | "resume" | "stop" (the toggle's current meaning). */
export function buttonsView(doc, onClick) {
  const root = h(doc, "div", "chainlib-controls");
  const play = add(root, button(doc, "chainlib-play", "play", "Play"));
  const pause = add(root, button(doc, "chainlib-pause", "pause", "Pause"));
  const stop = add(root, button(doc, "chainlib-stop", "stop", "Stop"));
  const seqBox = add(root, h(doc, "span", "chainlib-seq-box"));
  add(seqBox, doc.createTextNode("#"));
  const seq = add(seqBox, h(doc, "span", "chainlib-seq", "seq"));

  let mode = "pause";
  const onPlay = () => onClick("play");
  const onPause = () => onClick(mode);
  const onStop = () => onClick("stop");
  play.addEventListener("click", onPlay);
  pause.addEventListener("click", onPause);
  stop.addEventListener("click", onStop);

  return {
    root,
    paint(st) {
      const b = buttons(st);
      mode = pauseButtonMode(st);
      setDisabled(play, !b.play.enabled);
      setText(pause, mode === "resume" ? "Resume" : "Pause");
      setAttr(pause, "data-mode", mode);
      setDisabled(pause, !b[mode].enabled);
      setDisabled(stop, !b.stop.enabled);
      setAttr(stop, "title",
        st.ui === "disconnected" ? stopQueuedTitle(st.config && st.config.backend) : null);
      setText(seq, st.seq >= 0 ? String(st.seq) : "");
    },
    dispose() {
      play.removeEventListener("click", onPlay);
      pause.removeEventListener("click", onPause);
      stop.removeEventListener("click", onStop);
    },
  };
}
