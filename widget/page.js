// Entry of the control page (GET / of chainlib.serve): the notebook panel, over HTTP.
import panel from "./panel.js";
import { boot } from "./web.js";

globalThis.chainlibModel = boot(document, panel); // exposed for tests (transport counters)
