export const placeholder = 'proxy';
