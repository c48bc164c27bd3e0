import { ROOT_CONTEXT, type Context, type ContextManager } from '@opentelemetry/api';

/**
 * An OpenTelemetry context manager that keeps the active context for the synchronous extent of
 * `context.with` only: no async hooks. On Node 20, AsyncLocalStorage (the SDK's default manager)
 * puts a hook on every promise in the process once anything enters it (and the SDK's own exporters
 * do), which measured ~4 % of the gateway's CPU under message load. The gateway passes spans
 * explicitly instead: core re-enters a span's context around each call that should be its child
 * and puts trace ids on its log lines itself after an await (core's traceLogFields).
 *
 * `with(ctx, asyncFn)` makes `ctx` active until `asyncFn` first awaits: enough for a Redis command
 * issued at the start of a port call to become a child span, and for a log line written before it.
 */
export class SynchronousContextManager implements ContextManager {
  private current: Context = ROOT_CONTEXT;

  active(): Context {
    return this.current;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    context: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    const previous = this.current;
    this.current = context;
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.current = previous;
    }
  }

  bind<T>(context: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const fn = target as unknown as (...args: unknown[]) => unknown;
    const manager = this;
    return function bound(this: unknown, ...args: unknown[]) {
      return manager.with(context, () => fn.apply(this, args));
    } as unknown as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.current = ROOT_CONTEXT;
    return this;
  }
}
