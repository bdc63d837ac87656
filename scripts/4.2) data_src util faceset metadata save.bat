@echo off
rem 4.2) data_src util faceset metadata save: save the face metadata of data_src/aligned to
rem faceset_metadata.json before editing the images in another program (keep the file names).
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" util ^
    --input-dir "%WORKSPACE%\data_src\aligned" ^
    --save-faceset-metadata ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
