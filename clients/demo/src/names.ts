/**
 * The names people chose, for the presence list: anonymous connections carry no name, so
 * the chat announces one (`hello`) and every chat message repeats it. One map per app,
 * provided by App.vue, learnt from the messages of the room.
 */
import { inject, provide, reactive, type InjectionKey } from 'vue';

export type Names = Map<string, string>;
const KEY: InjectionKey<Names> = Symbol('names');

export function provideNames(): Names {
  const names = reactive(new Map<string, string>()) as Names;
  provide(KEY, names);
  return names;
}

export function useNames(): Names {
  const names = inject(KEY);
  if (!names) throw new Error('useNames: provideNames() was not called above');
  return names;
}

/** A nickname kept for the tab's session. */
export function initialNickname(): string {
  const saved = sessionStorage.getItem('hub-demo-name');
  if (saved) return saved;
  const name = `guest-${Math.random().toString(36).slice(2, 6)}`;
  sessionStorage.setItem('hub-demo-name', name);
  return name;
}

export function saveNickname(name: string): void {
  sessionStorage.setItem('hub-demo-name', name);
}
