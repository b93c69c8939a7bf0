// Entry of the control page (GET / of chainlib.serve): the notebook panel, over HTTP.
// `../panel.js` is served as the bundle anywidget loads; the browser resolves these imports.
import panel from "../panel.js";
import { boot } from "./model.js";

globalThis.chainlibModel = boot(document, panel); // exposed for tests (transport counters)
